"""The Local profile: connect the app to the per-user local background service.

The stack (private redis-server, loopback gateway, worker process) runs in its own
process, `tinyllama local --service`, which outlives the window: an answer in flight
goes on when the app quits or crashes and is shown complete on the next start. This
class finds that service through its discovery file, starts it when none answers, and
hands back where to talk to it. Quitting the app leaves the service running; it stops
itself when idle. The app's process never imports the router, Redis or Powertools.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from backend.entrypoints.local_service import ServicePaths, connect_or_start, key_fingerprint
from desktop.core.diagnostics import app_version
from desktop.core.errors import AppError
from desktop.core.settings import Settings

ECHO_NOTICE = (
    "Local profile with the echo engine: answers repeat your message back, word by word. "
    "For a real model: Account → Model… downloads TinyLlama-1.1B-Chat, or takes a GGUF file you have "
    "or any OpenAI-compatible server (Ollama, LM Studio); Account → Profile… has vLLM too, and "
    "Account → Deploy to AWS… runs a model on your own GPU."
)

MISSING_MODEL = (
    "The model file {path} is not there any more (moved or deleted), so answers repeat your "
    "message back for now. Download TinyLlama-1.1B-Chat again or choose another GGUF file in "
    "Account → Model…."
)

NEEDS_WSL = (
    "The Local profile runs its stack (redis-server, the router and a worker) as POSIX "
    "processes, which Windows does not have. Run TinyLlama under WSL for the Local profile, "
    "or use your own AWS stack: Account → Profile… (or Account → Deploy to AWS…)."
)


class LocalProfile:
    """Connect to (or start) the local service; `token()` is set once connected.

    `stack_factory` runs a `LocalStack` in this process instead (GUI tests that want a
    fast in-process stack); `stop()` stops only such a stack, never the service.
    `service_args` are extra `tinyllama local --service` options (tests: short timeouts).
    """

    def __init__(
        self,
        engine: str = "echo",
        port: int = 0,
        stack_factory: Callable[..., Any] | None = None,
        engine_url: str = "",
        model: str = "",
        paths: ServicePaths | None = None,
        service_args: Sequence[str] = (),
        version: str | None = None,
        api_key: Callable[[], str | None] = lambda: None,
    ) -> None:
        self.port = port
        # The OpenAI-compatible server's key, read from the keyring when the service starts
        # and handed over in its environment (ENGINE_API_KEY), never on a command line.
        self.api_key = api_key
        self._stack: Any | None = None
        self.configure(engine, engine_url, model)
        self.paths = paths
        self.service_args = list(service_args)
        self.version = app_version() if version is None else version
        self._factory = stack_factory
        self._token: str | None = None

    @classmethod
    def from_settings(cls, settings: Settings, **kwargs: Any) -> LocalProfile:
        """The profile the settings' `local` section describes (`kwargs`: see __init__)."""
        profile = cls(port=int(settings.get("local.port") or 0), **kwargs)
        profile.configure_from(settings)
        return profile

    def configure_from(self, settings: Settings) -> None:
        """Take the settings' engine; llamacpp runs `local.gguf`, the others `local.model`."""
        engine = str(settings.get("local.engine"))
        model = str(settings.get("local.gguf") if engine == "llamacpp" else settings.get("local.model") or "")
        self.configure(engine, str(settings.get("local.engine_url") or ""), model)

    def configure(self, engine: str, engine_url: str = "", model: str = "") -> None:
        """Switch engine or model. The next `start()` uses it: a service with other options
        is replaced (its answers in flight finish first), an in-process stack is stopped."""
        self.chosen = engine
        self.engine_url = engine_url or None
        self.model = model or None
        self._missing = ""
        if engine == "llamacpp" and not (self.model and Path(self.model).is_file()):
            # No model yet (or it was moved): echo answers, and the notice says why.
            self._missing, engine, self.model = self.model or "", "echo", None
        self.engine = engine
        stack, self._stack = self._stack, None
        if stack is not None:
            stack.stop()

    @property
    def notice(self) -> str:
        if self._missing:
            return MISSING_MODEL.format(path=self._missing)
        return ECHO_NOTICE if self.engine == "echo" else ""

    def options(self) -> list[str]:
        """The settings' engine as `tinyllama local` options."""
        args = ["--port", str(self.port), "--engine", self.engine]
        if self.engine != "echo":
            if self.engine_url:
                args += ["--engine-url", self.engine_url]
            if self.model:
                args += ["--model", self.model]
        return [*args, *self.service_args]

    def expected(self) -> dict[str, Any]:
        """What a running service must have been started with to be reused: this app's
        version and the settings' engine (as its discovery file records them)."""
        real = self.engine != "echo"
        return {"version": self.version, "engine": self.engine,
                "engine_url": self.engine_url if real else None, "model": self.model if real else None,
                "engine_key": key_fingerprint(self._key())}

    def _key(self) -> str | None:
        return self.api_key() if self.engine == "openai" else None

    def start(self) -> tuple[str, str]:
        """Blocking (a second or so when it must start the service): run off the UI thread.
        Returns (url, token). A running service of another version or engine is replaced.
        Called again after the service went away (killed, crashed, idle): it re-reads the
        discovery file and starts a service when none answers."""
        if self._factory is not None:
            return self._start_in_process()
        if sys.platform == "win32":  # the service's locks and process groups are POSIX-only
            raise AppError(NEEDS_WSL)
        try:
            key = self._key()
            url, token = connect_or_start(self.options(), self.paths, expect=self.expected(),
                                          env={"ENGINE_API_KEY": key} if key else None)
        except Exception as exc:  # ServiceError, OSError, or a platform without flock: words, not a traceback
            raise AppError(
                f"The local TinyLlama service could not start ({exc}). "
                "Is redis-server installed? Try `tinyllama local` in a terminal to see why."
            ) from None
        self._token = token
        return url, token

    def _start_in_process(self) -> tuple[str, str]:
        assert self._factory is not None
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
        self._token = stack.token
        return stack.url, stack.token

    def token(self) -> str | None:
        return self._token

    def stop(self) -> None:
        """Disconnect (`token()` is None from now on) and stop an in-process stack. The
        background service is left running on purpose: answers in flight go on, and it
        stops itself when idle."""
        self._token = None
        stack, self._stack = self._stack, None
        if stack is not None:
            stack.stop()
