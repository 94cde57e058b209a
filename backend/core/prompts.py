"""What a prompt request may hold: the limits of `infra/openapi.yaml`, checked here.

The numbers are the contract (`backend.core.limits`); `tests/unit/test_contract.py` reads
the OpenAPI file and fails if the two drift apart.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, replace
from typing import Any

from backend.core.errors import InvalidRequest, PayloadTooLarge
from backend.core.limits import (
    DEFAULT_MAX_TOKENS,
    DEFAULT_TEMPERATURE,
    MAX_BODY_BYTES,
    MAX_MESSAGE_CHARS,
    MAX_MESSAGES,
    MAX_TOKENS_LIMIT,
    MAX_TOTAL_CHARS,
    TEMPERATURE_MAX,
    TEMPERATURE_MIN,
)

ROLES = ("system", "user", "assistant")
IDEMPOTENCY_KEY_PATTERN = r"^[A-Za-z0-9_.:-]{8,128}$"
MODEL_PATTERN = r"^[A-Za-z0-9_./:-]{1,128}$"
REQUEST_ID_PATTERN = r"^[0-9a-f]{32}$"

_FIELDS = {"messages", "max_tokens", "temperature", "model", "idempotency_key"}


@dataclass(frozen=True)
class PromptRequest:
    """A validated `POST /prompts` body."""

    messages: list[dict[str, str]]
    max_tokens: int = DEFAULT_MAX_TOKENS
    temperature: float = DEFAULT_TEMPERATURE
    model: str | None = None
    idempotency_key: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def params(self) -> dict[str, Any]:
        """The generation parameters the worker passes to the engine."""
        return {"max_tokens": self.max_tokens, "temperature": self.temperature, "model": self.model}


def parse_json_body(raw: str | bytes | None) -> Any:
    """Decode a request body, with the contract's size limit and a clear error."""
    if raw is None or raw == "" or raw == b"":
        raise InvalidRequest("The request has no body; send a JSON object.", code="empty_body", status=400)
    size = len(raw.encode() if isinstance(raw, str) else raw)
    if size > MAX_BODY_BYTES:
        raise PayloadTooLarge(
            f"The request is {size:,} bytes; the limit is {MAX_BODY_BYTES:,}. "
            "Shorten the conversation or start a new one."
        )
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidRequest(f"The body is not valid JSON ({exc}).", code="malformed_json", status=400) from None
    except RecursionError:  # json's decoder recurses per nesting level; 256 KiB of `[` is enough
        raise InvalidRequest("The body's JSON is nested too deeply.", code="malformed_json", status=400) from None


def parse_prompt(body: Any) -> PromptRequest:
    """Check a decoded body against the contract; raise InvalidRequest naming the field."""
    if not isinstance(body, dict):
        raise InvalidRequest("The body must be a JSON object with a `messages` list.")
    unknown = set(body) - _FIELDS
    if unknown:
        raise InvalidRequest(f"Unknown field(s): {', '.join(sorted(unknown))}.")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest("`messages` must be a non-empty list of {role, content} objects.")
    if len(messages) > MAX_MESSAGES:
        raise PayloadTooLarge(f"At most {MAX_MESSAGES} messages per prompt; this has {len(messages)}.")
    total = 0
    clean: list[dict[str, str]] = []
    for i, msg in enumerate(messages):
        if not isinstance(msg, dict) or set(msg) - {"role", "content"}:
            raise InvalidRequest(f"`messages[{i}]` must be an object with `role` and `content` only.")
        role, content = msg.get("role"), msg.get("content")
        if role not in ROLES:
            raise InvalidRequest(f"`messages[{i}].role` must be one of {', '.join(ROLES)}.")
        if not isinstance(content, str):
            raise InvalidRequest(f"`messages[{i}].content` must be a string.")
        if len(content) > MAX_MESSAGE_CHARS:
            raise PayloadTooLarge(
                f"`messages[{i}]` has {len(content):,} characters; the limit is {MAX_MESSAGE_CHARS:,}."
            )
        total += len(content)
        clean.append({"role": role, "content": content})
    if total > MAX_TOTAL_CHARS:
        raise PayloadTooLarge(f"The conversation has {total:,} characters; the limit is {MAX_TOTAL_CHARS:,}.")
    if clean[-1]["role"] == "assistant":
        raise InvalidRequest("The last message must be from the user or the system, not the assistant.")

    max_tokens = body.get("max_tokens", DEFAULT_MAX_TOKENS)
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or not 1 <= max_tokens <= MAX_TOKENS_LIMIT:
        raise InvalidRequest(f"`max_tokens` must be a whole number from 1 to {MAX_TOKENS_LIMIT}.")
    temperature = body.get("temperature", DEFAULT_TEMPERATURE)
    if (
        isinstance(temperature, bool)
        or not isinstance(temperature, int | float)
        or not TEMPERATURE_MIN <= temperature <= TEMPERATURE_MAX
    ):
        raise InvalidRequest(f"`temperature` must be a number from {TEMPERATURE_MIN} to {TEMPERATURE_MAX}.")
    model = body.get("model")
    if model is not None and (not isinstance(model, str) or not re.fullmatch(MODEL_PATTERN, model)):
        raise InvalidRequest("`model` must be a model name (letters, digits and _ . / : -).")
    key = body.get("idempotency_key")
    if key is not None and (not isinstance(key, str) or not re.fullmatch(IDEMPOTENCY_KEY_PATTERN, key)):
        raise InvalidRequest("`idempotency_key` must be 8–128 characters of letters, digits and _ . : -.")
    return PromptRequest(clean, max_tokens, float(temperature), model, key)


# A lower bound of tokens per character, so that a refusal is certain: tokenizers of
# Llama-family models spend about one token per 3.5–4 characters of English and more on
# code, digits and other scripts; 5 keeps the estimate below the real count for nearly
# all text. Each message also costs the chat template's role markers.
CHARS_PER_TOKEN_AT_MOST = 5
TEMPLATE_TOKENS_PER_MESSAGE = 4
# The other side, for capping an answer so that it fits: about 3 characters a token is
# what code and digit-heavy text cost; English prose costs less (~4), so the cap leaves
# a little room unused rather than asking the engine for more than its context holds
# (vLLM refuses such a request outright; llama.cpp cuts the answer at its context end).
CHARS_PER_TOKEN_AT_LEAST = 3
# The assistant's turn that the chat template opens after the last message.
TEMPLATE_TOKENS_FOR_ANSWER = 8


def estimate_prompt_tokens(messages: list[dict[str, str]]) -> int:
    """A deliberately low estimate of the prompt's tokens (see CHARS_PER_TOKEN_AT_MOST)."""
    chars = sum(len(m["content"]) for m in messages)
    return chars // CHARS_PER_TOKEN_AT_MOST + TEMPLATE_TOKENS_PER_MESSAGE * len(messages)


def estimate_prompt_tokens_high(messages: list[dict[str, str]]) -> int:
    """A generous estimate of the prompt's tokens (see CHARS_PER_TOKEN_AT_LEAST)."""
    chars = sum(len(m["content"]) for m in messages)
    return (-(-chars // CHARS_PER_TOKEN_AT_LEAST) + TEMPLATE_TOKENS_PER_MESSAGE * len(messages)
            + TEMPLATE_TOKENS_FOR_ANSWER)


def fit_context(prompt: PromptRequest, context_tokens: int | None) -> PromptRequest:
    """The prompt as the model can take it: `max_tokens` capped to the room the
    conversation leaves in the context (a chat's 1024 on a 512-token model asks for what
    cannot be), or PayloadTooLarge (413 context_too_long) when the conversation itself
    fills the context, before anything is queued or woken.

    The refusal uses the low estimate, so it is certain; the cap uses the generous one,
    so the answer fits. When only the low estimate leaves room, the answer gets that room:
    the engine then ends it at its context's end (finish reason `length`)."""
    if not context_tokens:
        return prompt
    low = estimate_prompt_tokens(prompt.messages)
    if low >= context_tokens:
        raise PayloadTooLarge(
            f"The conversation is about {low:,} tokens or more; the model reads at most "
            f"{context_tokens:,}. Shorten it or start a new conversation.",
            code="context_too_long",
        )
    room = context_tokens - estimate_prompt_tokens_high(prompt.messages)
    if room < 1:
        room = context_tokens - low
    if prompt.max_tokens <= room:
        return prompt
    return replace(prompt, max_tokens=room)


def check_request_id(request_id: str) -> str:
    """Reject ids that cannot be ours before touching Redis. Unknown ids are 404 later."""
    if not re.fullmatch(REQUEST_ID_PATTERN, request_id or ""):
        from backend.core.errors import NotFound

        raise NotFound("No prompt with that id.")
    return request_id
