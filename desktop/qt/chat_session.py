"""Sending prompts and following their answers, independent of which chat is on screen.

Every answer is a stored assistant message with its request id; one PromptPoller follows
each until it ends, writing progress to the history store. So an answer keeps growing
while the person looks at another chat, and one still running when the app quit is picked
up again on the next start (`resume`).

When the API becomes unreachable and `reconnects` is set (the Local profile: its
background service can be brought back), the session stops following, emits
`connection_lost` instead of a stream of errors, and holds prompts typed meanwhile (and
ones whose send failed) until `set_api` gives it a client for the service that is back.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QObject, Signal

from desktop.core.errors import AppError, NetworkError
from desktop.core.history import DEFAULT_TITLE, HistoryStore
from desktop.core.markdown import short_title
from desktop.core.models import ChatMessage, Compute, PromptState
from desktop.qt.poller import PromptPoller
from desktop.qt.runner import Runner
from desktop.services.api import UNREACHABLE, ApiClient

TITLE_CHARS = 48
# The turn that asks for the rest of an answer cut at max_tokens. A user turn, not a
# trailing assistant message: the API refuses a conversation that ends with the assistant
# (backend/core/prompts.py), and every OpenAI-style engine understands a plain request.
CONTINUE_PROMPT = "Continue from where you stopped."


class ChatSession(QObject):
    """Send, stop and resume answers; tells views through signals."""

    message_changed = Signal(object)  # ChatMessage (added or updated)
    error = Signal(object)  # AppError to show
    compute_hint = Signal(object)  # Compute, from a prompt answer (fresher than /status)
    inflight_changed = Signal(int)
    connection_lost = Signal()  # the API went away and `reconnects` is set: bring it back, then set_api

    def __init__(
        self, history: HistoryStore, runner: Runner, api: ApiClient | None = None,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.history = history
        self._runner = runner
        self._api = api
        self._pollers: dict[int, PromptPoller] = {}
        self._on_screen: int | None = None  # the chat shown: its answers are polled as they stream
        self._sending: set[int] = set()
        # Prompts waiting for the connection to come back: (answer id, messages, params).
        self._held: list[tuple[int, list[dict[str, str]], dict[str, Any]]] = []
        self._holding = False
        self._resumed = False
        self.reconnects = False

    @property
    def api(self) -> ApiClient | None:
        return self._api

    def set_api(self, api: ApiClient | None) -> None:
        """Talk to `api` from now on; answers being followed are picked up by `resume()`
        (their pollers belong to the old client, which may have lost its session).
        Prompts held while the connection was away are sent now."""
        if api is not self._api:
            self.shutdown()
        self._api = api
        if api is not None and self._holding:
            self._holding = False
            held, self._held = self._held, []
            for msg_id, messages, params in held:
                self._submit(api, msg_id, messages, params)

    def hold(self) -> None:
        """The connection is being brought back: stop following answers (`resume()` after
        `set_api` picks them up again) and keep prompts typed meanwhile until then."""
        self._holding = True
        self.shutdown()

    @property
    def holding(self) -> bool:
        """Prompts sent now are kept and go out when the connection is (back) up."""
        return self._holding

    def is_lost_connection(self, exc: BaseException) -> bool:
        """Whether `exc` means the API went away and this session brings it back."""
        return self.reconnects and isinstance(exc, NetworkError) and exc.code == UNREACHABLE

    def report(self, exc: BaseException) -> None:
        """An error of a call to this session's API (the window's status poll too): a lost
        connection starts bringing it back; anything else is shown."""
        if self.is_lost_connection(exc):
            self._lost()
        else:
            self.error.emit(exc if isinstance(exc, AppError) else AppError(str(exc)))

    def _lost(self) -> None:
        if self._holding:
            return  # already being brought back
        self.hold()
        self.connection_lost.emit()

    def inflight(self) -> int:
        return len(self._pollers) + len(self._sending) + len(self._held)

    def counts(self) -> tuple[int, int]:
        """(prompts waiting for their answer to start, answers streaming now)."""
        running = 0
        for msg_id in self._pollers:
            msg = self.history.message(msg_id)
            running += msg is not None and msg.status == "running"
        return self.inflight() - running, running

    # send ----------------------------------------------------------------------------

    def send(self, conv_id: int, text: str) -> ChatMessage | None:
        """Store the prompt and an empty answer, then submit off the UI thread."""
        conv = self.history.conversation(conv_id)
        api = self._api
        if conv is None or not text.strip():
            return None
        if api is None and not self._holding:
            self.error.emit(AppError("Not connected yet; wait for the status bar to say so."))
            return None
        earlier = [m for m in self.history.messages(conv_id) if m.content and m.status == "done"]
        if not earlier and conv.title == DEFAULT_TITLE:
            self.history.rename(conv_id, short_title(text, TITLE_CHARS))
        user = self.history.add_message(conv_id, "user", text)
        answer = self.history.add_message(conv_id, "assistant", "", status="sending")
        self.message_changed.emit(user)
        self.message_changed.emit(answer)

        messages = [{"role": "system", "content": conv.system_prompt}] if conv.system_prompt else []
        messages += [{"role": m.role, "content": m.content} for m in earlier]
        messages.append({"role": "user", "content": text})
        import uuid  # it loads `platform` too: at the first prompt, not at start-up

        key = uuid.uuid4().hex
        params = {"max_tokens": conv.max_tokens, "temperature": conv.temperature,
                  "model": conv.model, "idempotency_key": key}

        if api is None:  # holding: sent when the connection is back
            self._held.append((answer.id, messages, params))
            self.inflight_changed.emit(self.inflight())
        else:
            self._submit(api, answer.id, messages, params)
        return answer

    def regenerate(self, conv_id: int) -> ChatMessage | None:
        """Replace the chat's last answer by a new one to the same prompt."""
        msgs = self.history.messages(conv_id)
        if not msgs or msgs[-1].role != "assistant" or msgs[-1].in_flight:
            return None
        if len(msgs) < 2 or msgs[-2].role != "user":
            return None
        prompt = msgs[-2]
        self.history.delete_message(msgs[-1].id)
        self.history.delete_message(prompt.id)
        return self.send(conv_id, prompt.content)

    def resend(self, conv_id: int, msg_id: int, text: str) -> ChatMessage | None:
        """Replace prompt `msg_id` by `text`, drop every message after it, and ask again.
        None (nothing changed) while an answer of this chat is still running, or when
        `msg_id` is not one of its prompts."""
        msgs = self.history.messages(conv_id)
        edited = next((m for m in msgs if m.id == msg_id and m.role == "user"), None)
        if edited is None or not text.strip() or any(m.in_flight for m in msgs):
            return None
        if self._api is None and not self._holding:
            self.error.emit(AppError("Not connected yet; wait for the status bar to say so."))
            return None
        conv = self.history.conversation(conv_id)
        if conv is not None and msgs[0].id == msg_id and conv.title == short_title(edited.content, TITLE_CHARS):
            # The title was made from the prompt being replaced: the new one names it.
            self.history.rename(conv_id, DEFAULT_TITLE)
        self.history.delete_from(conv_id, msg_id)
        return self.send(conv_id, text)

    def continue_answer(self, conv_id: int) -> ChatMessage | None:
        """Ask for the rest of the chat's last answer when it was cut at the token limit:
        the conversation so far (the cut answer included) and CONTINUE_PROMPT; the new
        answer comes below it. None when the last message is not a cut answer."""
        msgs = self.history.messages(conv_id)
        if not msgs or not msgs[-1].cut:
            return None
        return self.send(conv_id, CONTINUE_PROMPT)

    def _submit(self, api: ApiClient, msg_id: int, messages: list[dict[str, str]],
                params: dict[str, Any]) -> None:
        self._sending.add(msg_id)
        self.inflight_changed.emit(self.inflight())
        self._runner.run(
            lambda: api.submit(messages, **params),
            lambda state: self._accepted(msg_id, state),
            lambda exc: self._refused(msg_id, exc, messages, params),
        )

    def _accepted(self, msg_id: int, state: PromptState) -> None:
        self._sending.discard(msg_id)
        msg = self.history.message(msg_id)
        if msg is None:  # its chat was deleted meanwhile
            return
        msg.request_id = state.request_id
        msg.status = state.status
        self.history.update_message(msg)
        self.message_changed.emit(msg)
        self.compute_hint.emit(state.compute)
        self._follow(msg)

    def _refused(self, msg_id: int, exc: BaseException, messages: list[dict[str, str]],
                 params: dict[str, Any]) -> None:
        self._sending.discard(msg_id)
        if self.is_lost_connection(exc) and self.history.message(msg_id) is not None:
            # Sent again, with the same idempotency key, once the service is back.
            self._held.append((msg_id, messages, params))
            self._lost()
            self.inflight_changed.emit(self.inflight())
            return
        self.inflight_changed.emit(self.inflight())
        error = exc if isinstance(exc, AppError) else AppError(f"Sending failed: {exc}")
        msg = self.history.message(msg_id)
        if msg is not None:
            msg.status = "failed"
            msg.error = str(error)
            self.history.update_message(msg)
            self.message_changed.emit(msg)
        self.error.emit(error)

    # follow --------------------------------------------------------------------------

    def _follow(self, msg: ChatMessage) -> None:
        api = self._api
        if api is None or msg.request_id is None or msg.id in self._pollers:
            return
        poller = PromptPoller(self._runner, api.prompt, msg.request_id, self, msg.conversation_id)
        poller.set_on_screen(msg.conversation_id == self._on_screen)
        poller.updated.connect(lambda state, mid=msg.id: self._progress(mid, state))
        poller.failed.connect(self.report)
        poller.finished.connect(lambda state, mid=msg.id: self._ended(mid, state))
        self._pollers[msg.id] = poller
        self.inflight_changed.emit(self.inflight())
        poller.start()

    def show(self, conv_id: int | None) -> None:
        """The chat now on screen (None: none, or the window is minimised). Its answers are
        polled as they stream; the others every 2 s (`desktop.core.polling`)."""
        self._on_screen = conv_id
        for poller in self._pollers.values():
            poller.set_on_screen(poller.conversation_id == conv_id)

    def _progress(self, msg_id: int, state: PromptState) -> None:
        msg = self.history.message(msg_id)
        if msg is None:
            self._drop(msg_id)
            return
        if (msg.content, msg.status, msg.completion_tokens, msg.retrying, msg.finish_reason) != (
            state.text, state.status, state.completion_tokens, state.retrying, state.finish_reason
        ):
            msg.apply(state)
            self.history.update_message(msg)
            self.message_changed.emit(msg)
        if state.compute != Compute():
            self.compute_hint.emit(state.compute)

    def _ended(self, msg_id: int, state: PromptState | None) -> None:
        self._drop(msg_id)
        msg = self.history.message(msg_id)
        if msg is None:
            return
        if state is None:
            if msg.in_flight:
                msg.status = "expired"
                msg.error = "The answer is no longer on the server (results are kept 5 minutes)."
                self.history.update_message(msg)
                self.message_changed.emit(msg)
        elif state.status == "failed" and state.error:
            self.error.emit(AppError(state.error, code="failed"))

    def _drop(self, msg_id: int) -> None:
        poller = self._pollers.pop(msg_id, None)
        if poller is not None:
            poller.stop()
            poller.deleteLater()
            self.inflight_changed.emit(self.inflight())

    # stop / resume -------------------------------------------------------------------

    def stop(self, msg_id: int) -> None:
        """Cancel on the server (the engine stops generating); the poller sees `cancelled`."""
        msg = self.history.message(msg_id)
        api = self._api
        if msg is None or api is None or msg.request_id is None or not msg.in_flight:
            return
        rid = msg.request_id
        self._runner.run(
            lambda: api.cancel(rid),
            lambda state: self._progress(msg_id, state),
            self.report,
        )

    def stop_conversation(self, conv_id: int) -> None:
        for msg in self.history.messages(conv_id):
            if msg.id in self._pollers:
                self.stop(msg.id)

    def resume(self) -> int:
        """Follow every answer still running: at the first connection, those of when the
        app last closed; after a reconnect or a new sign-in, those being followed before."""
        if not self._resumed:
            # Only at start: later, a "sending" answer is one of ours still being sent.
            self.history.fail_unsent()
            self._resumed = True
        pending = self.history.in_flight_messages()
        for msg in pending:
            self._follow(msg)
        return len(pending)

    def shutdown(self) -> None:
        for msg_id in list(self._pollers):
            self._drop(msg_id)
