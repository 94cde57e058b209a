"""Engines behind one interface (`backend.core.ports.Engine`).

- `EchoEngine`: the seed's MVP; streams the last user message back word by word. With a
  per-word delay it is also the engine "whose time is known" in the benchmarks.
- `OpenAIEngine`: any OpenAI-compatible server through the `openai` SDK. On the GPU
  instance that is vLLM on localhost:8000; closing the stream makes vLLM abort the request,
  which is how a cancel really stops the GPU.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from backend.core.errors import TinyLlamaError
from backend.core.ports import Chunk


class EngineError(TinyLlamaError):
    """The engine failed to answer; the message is shown with the failed prompt."""

    status = 503
    code = "engine_error"


def _last_user_text(messages: list[dict[str, str]]) -> str:
    for msg in reversed(messages):
        if msg["role"] == "user":
            return msg["content"]
    return messages[-1]["content"]


class EchoEngine:
    """Streams the last user message back, one word per `delay_s`."""

    name = "echo"

    def __init__(self, delay_s: float = 0.0):
        self.delay_s = delay_s
        # An Event, not time.sleep: a cancelled job stops waiting at once.
        self._never = threading.Event()

    def ready(self) -> bool:
        return True

    def stream(
        self, messages: list[dict[str, str]], params: dict[str, Any], should_stop: Callable[[], bool]
    ) -> Iterator[Chunk]:
        words = _last_user_text(messages).split(" ")
        limit = int(params.get("max_tokens") or len(words))
        sent = 0
        for i, word in enumerate(words[:limit]):
            if should_stop():
                yield Chunk(finish_reason="cancelled", prompt_tokens=len(words), completion_tokens=sent)
                return
            if self.delay_s:
                self._never.wait(self.delay_s)
            sent += 1
            yield Chunk(text=word if i == 0 else " " + word)
        reason = "length" if limit < len(words) else "stop"
        yield Chunk(finish_reason=reason, prompt_tokens=len(words), completion_tokens=sent)


class OpenAIEngine:
    """An OpenAI-compatible chat completions server (vLLM, or any URL)."""

    name = "openai"

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str = "EMPTY",
        model: str | None = None,
        timeout_s: float = 60.0,
        ready_timeout_s: float = 1.0,
        reconnect_s: float = 30.0,
        client: Any = None,
    ):
        if client is None:
            import openai  # heavy import: only where this engine is used

            client = openai.OpenAI(base_url=base_url, api_key=api_key, timeout=timeout_s, max_retries=0)
        self.client = client
        self.model = model
        self.base_url = base_url
        # The worker asks on every heartbeat; a hung server must not hold its loop for
        # the generation timeout.
        self.ready_timeout_s = ready_timeout_s
        self.reconnect_s = reconnect_s  # how long a prompt waits for a server that refuses connections
        self._pause = threading.Event()  # never set: a wait that is not time.sleep
        self.context_tokens: int | None = None

    def ready(self) -> bool:
        """True while the server lists a model (vLLM answers only after loading it)."""
        try:
            models = self.client.with_options(timeout=self.ready_timeout_s).models.list()
        except Exception:  # any failure means "not now"; the worker asks again shortly
            return False
        ids = [m.id for m in models.data]
        if not ids:
            return False
        if self.model is None:
            self.model = ids[0]
        for m in models.data:  # vLLM and llama.cpp say their context length; other servers may not
            if m.id != self.model:
                continue
            meta = getattr(m, "meta", None)  # llama.cpp: the context each slot serves
            if isinstance(getattr(m, "max_model_len", None), int):
                self.context_tokens = m.max_model_len
            elif isinstance(meta, dict) and isinstance(meta.get("n_ctx"), int):
                self.context_tokens = meta["n_ctx"]
        return True

    def stream(
        self, messages: list[dict[str, str]], params: dict[str, Any], should_stop: Callable[[], bool]
    ) -> Iterator[Chunk]:
        import openai

        request = dict(model=params.get("model") or self.model, messages=messages,
                       max_tokens=params.get("max_tokens"), temperature=params.get("temperature"),
                       stream=True, stream_options={"include_usage": True})
        deadline = time.monotonic() + self.reconnect_s
        try:
            while True:
                try:
                    stream = self.client.chat.completions.create(**request)
                    break
                except (openai.APIConnectionError, openai.APIStatusError) as exc:
                    # Nothing was generated yet: the server is restarting (the local supervisor
                    # brings a killed engine back in about a second) or still loading its
                    # model (llama.cpp answers 503). Wait for it rather than fail the prompt.
                    busy = isinstance(exc, openai.APIConnectionError) or exc.status_code == 503
                    if not busy or should_stop() or time.monotonic() > deadline:
                        raise
                    self._pause.wait(0.1)
        except openai.NotFoundError as exc:
            raise EngineError(f"The model server does not have that model ({exc.message}).") from None
        except openai.APIStatusError as exc:
            raise EngineError(f"The model server refused the prompt: {exc.message}") from None
        except openai.APIError as exc:
            raise EngineError(f"The model server is not answering ({exc.__class__.__name__}).") from None
        on_stop = getattr(should_stop, "on_stop", None)
        if on_stop is not None:
            # A stalled stream never reaches the next check: abort the request from the
            # stopping thread, which ends the read here and makes vLLM stop generating.
            on_stop(lambda: _abort(stream))
        finish: str | None = None
        usage = None
        sent = 0
        try:
            for event in stream:
                if should_stop():
                    break
                if event.usage is not None:
                    usage = event.usage
                for choice in event.choices:
                    if choice.delta and choice.delta.content:
                        sent += 1
                        yield Chunk(text=choice.delta.content)
                    if choice.finish_reason:
                        finish = choice.finish_reason
        except Exception as exc:  # the SDK's errors, or the HTTP client's when aborted mid-read
            if not should_stop():  # an aborted read fails; that is the cancel, not an error
                raise EngineError(f"The model server stopped mid-answer ({exc.__class__.__name__}).") from None
        finally:
            # Closing the HTTP response is what makes vLLM abort the generation.
            with contextlib.suppress(Exception):
                stream.close()
        if should_stop() and finish is None:
            finish = "cancelled"
        if finish is None:
            raise EngineError(
                "The engine's stream ended early, before the answer was finished "
                "(the model server may have restarted). Try again."
            )
        yield Chunk(
            finish_reason=finish,
            prompt_tokens=usage.prompt_tokens if usage else None,
            completion_tokens=usage.completion_tokens if usage else sent,
        )


def _abort(stream: Any) -> None:
    """Shut the stream's socket down, waking a read blocked in another thread.

    Closing the response alone does not: on Linux, close() of a socket another thread is
    reading leaves that read blocked. shutdown() ends it at once (the read sees EOF).
    """
    response = getattr(stream, "response", None)
    network = getattr(response, "extensions", {}).get("network_stream") if response is not None else None
    sock = network.get_extra_info("socket") if network is not None else None
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        return
    with contextlib.suppress(Exception):
        stream.close()


def make_engine(kind: str, *, url: str | None = None, model: str | None = None, api_key: str = "EMPTY",
                echo_delay_s: float = 0.0) -> Any:
    """Build an engine by name: echo, or openai/vllm/llamacpp (an OpenAI-compatible URL)."""
    if kind == "echo":
        return EchoEngine(echo_delay_s)
    if kind in ("openai", "vllm", "llamacpp"):
        engine = OpenAIEngine(url or "http://127.0.0.1:8000/v1", model=model, api_key=api_key)
        if kind == "llamacpp":
            engine.name = "llamacpp"  # the same client; /status says which engine answers
        return engine
    raise ValueError(f"unknown engine {kind!r}: use echo, openai, vllm or llamacpp")
