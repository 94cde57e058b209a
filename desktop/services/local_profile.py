"""The Local profile: run the backend's local stack in this process for the app.

The app owns the stack's lifetime (started on launch, stopped on quit). The stack itself
(private redis-server, loopback gateway, worker process) is the backend's; this class only
starts it with the settings' engine and hands back where to talk to it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from desktop.core.errors import AppError

ECHO_NOTICE = (
    "Local profile with the echo engine: answers repeat your message back, word by word. "
    "For a real model, pick an engine in Account → Profile… (any OpenAI-compatible server, "
    "such as vLLM or Ollama, or vLLM run by TinyLlama), or deploy your own GPU with "
    "Account → Deploy to AWS…."
)


def _default_factory(**kwargs: Any) -> Any:
    from backend.entrypoints.local import LocalStack

    return LocalStack(**kwargs)


class LocalProfile:
    """Start and stop the local stack; `url` and `token` are set once started."""

    def __init__(
        self,
        engine: str = "echo",
        port: int = 0,
        stack_factory: Callable[..., Any] | None = None,
        engine_url: str = "",
        model: str = "",
    ) -> None:
        self.engine = engine
        self.port = port
        self.engine_url = engine_url or None
        self.model = model or None
        self._factory = stack_factory or _default_factory
        self._stack: Any | None = None

    @property
    def notice(self) -> str:
        return ECHO_NOTICE if self.engine == "echo" else ""

    def start(self) -> tuple[str, str]:
        """Blocking (a second or so): run off the UI thread. Returns (url, token)."""
        try:
            options = {"engine_url": self.engine_url, "model": self.model} if self.engine != "echo" else {}
            stack = self._factory(port=self.port, engine=self.engine, **options)
            stack.start()
        except Exception as exc:
            raise AppError(
                f"The local TinyLlama stack could not start ({exc}). "
                "Is redis-server installed? Try `tinyllama local` in a terminal to see why."
            ) from None
        self._stack = stack
        return stack.url, stack.token

    def token(self) -> str | None:
        return self._stack.token if self._stack is not None else None

    def stop(self) -> None:
        stack, self._stack = self._stack, None
        if stack is not None:
            stack.stop()
