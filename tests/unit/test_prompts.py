"""The request validation of `backend.core.prompts`: every rule of the contract, both sides
of each limit, and the status and code each failure answers with."""

from __future__ import annotations

import json
from typing import Any

import pytest

from backend.core import prompts as p
from backend.core.errors import InvalidRequest, NotFound, PayloadTooLarge, TinyLlamaError

USER = {"role": "user", "content": "hello"}


def body(**fields: Any) -> dict[str, Any]:
    """A valid body with `fields` replaced (or added)."""
    return {"messages": [USER], **fields}


def rejected(raw_or_body: Any, *, raw: bool = False) -> TinyLlamaError:
    """Run the parser and return the domain error it raised (failing if it accepted)."""
    with pytest.raises(TinyLlamaError) as info:
        if raw:
            p.parse_prompt(p.parse_json_body(raw_or_body))
        else:
            p.parse_prompt(raw_or_body)
    return info.value


def assert_error(err: TinyLlamaError, status: int, code: str) -> None:
    assert (err.status, err.code) == (status, code), err.message
    assert err.to_body() == {"error": {"code": code, "message": err.message}}
    assert err.message.strip()


# -- the raw body -----------------------------------------------------------------------


@pytest.mark.parametrize("raw", ['{"messages": [', "not json", "{'single': 'quotes'}", b"\xff\xfe{", "{}}"])
def test_malformed_json_is_400_malformed_json(raw: str | bytes) -> None:
    assert_error(rejected(raw, raw=True), 400, "malformed_json")


def test_deeply_nested_json_is_400_not_a_crash() -> None:
    raw = "[" * 100_000 + "]" * 100_000  # well under the byte limit; deeper than json's recursion
    assert len(raw) < p.MAX_BODY_BYTES
    assert_error(rejected(raw, raw=True), 400, "malformed_json")


@pytest.mark.parametrize("raw", [None, "", b""])
def test_empty_body_is_400(raw: Any) -> None:
    err = rejected(raw, raw=True)
    assert err.status == 400
    assert isinstance(err, InvalidRequest)


def test_body_over_the_byte_limit_is_413() -> None:
    raw = json.dumps(body(messages=[{"role": "user", "content": "x" * p.MAX_BODY_BYTES}]))
    err = rejected(raw, raw=True)
    assert_error(err, 413, "payload_too_large")
    assert isinstance(err, PayloadTooLarge)


def test_body_limit_counts_bytes_not_characters() -> None:
    # 3 bytes per character in UTF-8: fewer characters than the limit, more bytes.
    text = "€" * (p.MAX_BODY_BYTES // 3 + 10)
    raw = json.dumps({"messages": [{"role": "user", "content": text}]}, ensure_ascii=False)
    assert len(raw) < p.MAX_BODY_BYTES < len(raw.encode())
    assert_error(rejected(raw, raw=True), 413, "payload_too_large")


def test_body_exactly_at_the_byte_limit_is_decoded() -> None:
    raw = json.dumps({"pad": ""})
    raw = json.dumps({"pad": "x" * (p.MAX_BODY_BYTES - len(raw))})
    assert len(raw.encode()) == p.MAX_BODY_BYTES
    assert p.parse_json_body(raw)["pad"].startswith("x")
    assert p.parse_json_body(raw.encode())["pad"].startswith("x")


# -- shape ------------------------------------------------------------------------------


@pytest.mark.parametrize("decoded", [[], [USER], "hello", 42, None, True])
def test_non_object_body_is_422(decoded: Any) -> None:
    assert_error(rejected(decoded), 422, "invalid_request")


def test_non_object_json_text_is_422() -> None:
    assert_error(rejected("[1, 2]", raw=True), 422, "invalid_request")


def test_unknown_fields_are_422_and_named() -> None:
    err = rejected(body(stream=True, zz_extra=1))
    assert_error(err, 422, "invalid_request")
    assert "stream" in err.message and "zz_extra" in err.message


@pytest.mark.parametrize(
    "messages",
    [None, "hello", {"role": "user"}, [], 5],
    ids=["null", "string", "object", "empty", "number"],
)
def test_messages_must_be_a_non_empty_list(messages: Any) -> None:
    assert_error(rejected(body(messages=messages)), 422, "invalid_request")


def test_messages_missing_is_422() -> None:
    assert_error(rejected({"max_tokens": 5}), 422, "invalid_request")


@pytest.mark.parametrize(
    "message",
    [
        "hello",
        ["user", "hello"],
        {"content": "hello"},
        {"role": "user"},
        {"role": "tool", "content": "x"},
        {"role": "User", "content": "x"},
        {"role": "", "content": "x"},
        {"role": None, "content": "x"},
        {"role": "user", "content": 5},
        {"role": "user", "content": None},
        {"role": "user", "content": ["a"]},
        {"role": "user", "content": "x", "name": "bob"},
    ],
)
def test_bad_messages_are_422(message: Any) -> None:
    err = rejected(body(messages=[USER, message]))
    assert_error(err, 422, "invalid_request")
    assert "messages[1]" in err.message  # names the offending message


def test_too_many_messages_is_413() -> None:
    assert_error(rejected(body(messages=[USER] * (p.MAX_MESSAGES + 1))), 413, "payload_too_large")


def test_the_maximum_number_of_messages_is_accepted() -> None:
    assert len(p.parse_prompt(body(messages=[USER] * p.MAX_MESSAGES)).messages) == p.MAX_MESSAGES


def test_too_long_message_is_413() -> None:
    long = {"role": "user", "content": "y" * (p.MAX_MESSAGE_CHARS + 1)}
    assert_error(rejected(body(messages=[long])), 413, "payload_too_large")


def test_message_at_the_length_limit_is_accepted() -> None:
    edge = {"role": "user", "content": "y" * p.MAX_MESSAGE_CHARS}
    assert p.parse_prompt(body(messages=[edge])).messages == [edge]


def test_total_characters_over_the_limit_is_413() -> None:
    per = p.MAX_MESSAGE_CHARS
    count = p.MAX_TOTAL_CHARS // per + 1
    assert count <= p.MAX_MESSAGES and count * per > p.MAX_TOTAL_CHARS
    msgs = [{"role": "user", "content": "z" * per}] * count
    assert_error(rejected(body(messages=msgs)), 413, "payload_too_large")


def test_total_characters_at_the_limit_is_accepted() -> None:
    per = p.MAX_MESSAGE_CHARS
    full, rest = divmod(p.MAX_TOTAL_CHARS, per)
    msgs = [{"role": "user", "content": "z" * per}] * full
    if rest:
        msgs.append({"role": "user", "content": "z" * rest})
    assert sum(len(m["content"]) for m in p.parse_prompt(body(messages=msgs)).messages) == p.MAX_TOTAL_CHARS


def test_last_message_from_the_assistant_is_422() -> None:
    msgs = [USER, {"role": "assistant", "content": "hi"}]
    assert_error(rejected(body(messages=msgs)), 422, "invalid_request")


def test_system_and_assistant_turns_before_the_user_are_kept_in_order() -> None:
    msgs = [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "a"},
        {"role": "assistant", "content": "b"},
        {"role": "user", "content": "c"},
    ]
    assert p.parse_prompt(body(messages=msgs)).messages == msgs


# -- parameters -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [True, False, 0, -1, p.MAX_TOKENS_LIMIT + 1, 10**30, 1.5, 512.5, "5", None, [5]],
)
def test_bad_max_tokens_is_422(value: Any) -> None:
    assert_error(rejected(body(max_tokens=value)), 422, "invalid_request")


@pytest.mark.parametrize("value", [1, p.MAX_TOKENS_LIMIT])
def test_max_tokens_limits_are_inclusive(value: int) -> None:
    assert p.parse_prompt(body(max_tokens=value)).max_tokens == value


@pytest.mark.parametrize(
    "value",
    [p.TEMPERATURE_MIN - 0.01, p.TEMPERATURE_MAX + 0.01, True, False, "0.5", None, float("nan"), float("inf")],
)
def test_bad_temperature_is_422(value: Any) -> None:
    assert_error(rejected(body(temperature=value)), 422, "invalid_request")


def test_nan_temperature_from_json_text_is_rejected() -> None:
    # Python's json accepts the non-standard NaN literal; the range check must still catch it.
    assert rejected('{"messages": [{"role": "user", "content": "x"}], "temperature": NaN}', raw=True).status in (
        400,
        422,
    )


@pytest.mark.parametrize("value", [p.TEMPERATURE_MIN, p.TEMPERATURE_MAX, 1])
def test_temperature_limits_are_inclusive_and_stored_as_float(value: float) -> None:
    parsed = p.parse_prompt(body(temperature=value))
    assert parsed.temperature == value
    assert type(parsed.temperature) is float


@pytest.mark.parametrize(
    "value", ["", "has space", "x" * 129, "a;b", "ü-model", 5, ["m"], "llama\n"],
    ids=["empty", "space", "too-long", "semicolon", "non-ascii", "number", "list", "trailing-newline"],
)
def test_bad_model_is_422(value: Any) -> None:
    assert_error(rejected(body(model=value)), 422, "invalid_request")


@pytest.mark.parametrize("value", ["meta-llama/Llama-3.2-1B-Instruct", "m", "x" * 128, "org/name:tag_1.0"])
def test_good_model_names_are_kept(value: str) -> None:
    assert p.parse_prompt(body(model=value)).model == value


@pytest.mark.parametrize(
    "value", ["short7c", "k" * 129, "has space1", "key/with/slash", 12345678, "", "abcdefgh\n"],
    ids=["7-chars", "129-chars", "space", "slash", "number", "empty", "trailing-newline"],
)
def test_bad_idempotency_key_is_422(value: Any) -> None:
    assert_error(rejected(body(idempotency_key=value)), 422, "invalid_request")


@pytest.mark.parametrize("value", ["k" * 8, "k" * 128, "2026-11-26T03:00:00.1_a"])
def test_good_idempotency_keys_are_kept(value: str) -> None:
    assert p.parse_prompt(body(idempotency_key=value)).idempotency_key == value


# -- the happy path -----------------------------------------------------------------------


def test_minimal_body_gets_the_contract_defaults() -> None:
    parsed = p.parse_prompt(p.parse_json_body(json.dumps(body())))
    assert parsed.messages == [USER]
    assert parsed.max_tokens == p.DEFAULT_MAX_TOKENS
    assert parsed.temperature == p.DEFAULT_TEMPERATURE
    assert parsed.model is None and parsed.idempotency_key is None
    assert parsed.params() == {
        "max_tokens": p.DEFAULT_MAX_TOKENS,
        "temperature": p.DEFAULT_TEMPERATURE,
        "model": None,
    }


def test_every_field_is_carried_through() -> None:
    parsed = p.parse_prompt(
        body(max_tokens=7, temperature=0.25, model="tiny/model", idempotency_key="retry-0001")
    )
    assert (parsed.max_tokens, parsed.temperature, parsed.model, parsed.idempotency_key) == (
        7,
        0.25,
        "tiny/model",
        "retry-0001",
    )
    assert parsed.params() == {"max_tokens": 7, "temperature": 0.25, "model": "tiny/model"}


def test_explicit_null_model_and_key_mean_absent() -> None:
    parsed = p.parse_prompt(body(model=None, idempotency_key=None))
    assert parsed.model is None and parsed.idempotency_key is None


def test_defaults_are_within_the_limits() -> None:
    assert 1 <= p.DEFAULT_MAX_TOKENS <= p.MAX_TOKENS_LIMIT
    assert p.TEMPERATURE_MIN <= p.DEFAULT_TEMPERATURE <= p.TEMPERATURE_MAX


# -- request ids -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value", ["", "abc", "0" * 31, "0" * 33, "G" * 32, "A" * 32, "../" + "0" * 29, "0" * 32 + "\n"],
    ids=["empty", "short", "31", "33", "non-hex", "upper-hex", "path", "trailing-newline"],
)
def test_bad_request_ids_are_404(value: str) -> None:
    with pytest.raises(NotFound) as info:
        p.check_request_id(value)
    assert_error(info.value, 404, "not_found")


def test_good_request_id_is_returned() -> None:
    rid = "0123456789abcdef" * 2
    assert p.check_request_id(rid) == rid
