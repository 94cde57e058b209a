"""`infra/openapi.yaml` and the code agree: the limits in the schema are the constants the
router checks, the enums are the domain's, and every operation of the spec is routed
(and nothing else is)."""

from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from backend.core import prompts as p
from backend.core.jobs import JobStatus
from backend.core.policies import budget_state
from backend.core.ports import ComputeState
from backend.entrypoints.gateway import make_event
from backend.entrypoints.router import Identity, create_app

SPEC_PATH = Path(__file__).resolve().parents[2] / "infra" / "openapi.yaml"
SPEC = yaml.safe_load(SPEC_PATH.read_text())
SCHEMAS = SPEC["components"]["schemas"]
METHODS = ("get", "post", "put", "patch", "delete")
CLAIMS = {"sub": "contract-user", "token_use": "access", "scope": "tinyllama/prompts"}
SAMPLE_ID = "0123456789abcdef0123456789abcdef"


def resolve(schema: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if ref:
        assert ref.startswith("#/components/schemas/"), ref
        return SCHEMAS[ref.rsplit("/", 1)[1]]
    return schema


def to_json_schema(node: Any) -> Any:
    """OpenAPI 3.0 schema → JSON Schema: `nullable` becomes a null type, refs point at $defs."""
    if isinstance(node, list):
        return [to_json_schema(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: to_json_schema(v) for k, v in node.items() if k != "nullable"}
    if "$ref" in out:
        out["$ref"] = out["$ref"].replace("#/components/schemas/", "#/$defs/")
    if node.get("nullable"):
        if "type" in out:
            out["type"] = [out["type"], "null"]
        if "enum" in out:
            out["enum"] = [*out["enum"], None]
    return out


def validator(name: str) -> jsonschema.Draft7Validator:
    schema = {**to_json_schema(copy.deepcopy(SCHEMAS[name])), "$defs": to_json_schema(copy.deepcopy(SCHEMAS))}
    return jsonschema.Draft7Validator(schema)


# -- limits ----------------------------------------------------------------------------------


def test_message_limits_match_the_code() -> None:
    props = SCHEMAS["Message"]["properties"]
    assert props["content"]["maxLength"] == p.MAX_MESSAGE_CHARS
    assert props["role"]["enum"] == list(p.ROLES)
    assert SCHEMAS["Message"]["additionalProperties"] is False
    assert set(SCHEMAS["Message"]["required"]) == {"role", "content"}


def test_prompt_request_limits_match_the_code() -> None:
    schema = SCHEMAS["PromptRequest"]
    props = schema["properties"]
    assert props["messages"]["minItems"] == 1
    assert props["messages"]["maxItems"] == p.MAX_MESSAGES
    assert resolve(props["messages"]["items"]) is SCHEMAS["Message"]
    assert (props["max_tokens"]["minimum"], props["max_tokens"]["maximum"]) == (1, p.MAX_TOKENS_LIMIT)
    assert props["max_tokens"]["type"] == "integer"
    assert props["max_tokens"]["default"] == p.DEFAULT_MAX_TOKENS
    temp = props["temperature"]
    assert (temp["minimum"], temp["maximum"], temp["default"]) == (
        p.TEMPERATURE_MIN,
        p.TEMPERATURE_MAX,
        p.DEFAULT_TEMPERATURE,
    )
    assert props["model"]["pattern"] == p.MODEL_PATTERN
    assert props["idempotency_key"]["pattern"] == p.IDEMPOTENCY_KEY_PATTERN
    # Limits JSON Schema cannot express are written in the description; keep them in step.
    assert f"{p.MAX_TOTAL_CHARS} characters" in props["messages"]["description"]
    assert f"{p.MAX_BODY_BYTES} bytes" in props["messages"]["description"]


def test_prompt_request_fields_are_exactly_the_parsed_ones() -> None:
    schema = SCHEMAS["PromptRequest"]
    assert schema["additionalProperties"] is False
    assert schema["required"] == ["messages"]
    parsed = {f.name for f in dataclasses.fields(p.PromptRequest)} - {"extra"}
    assert set(schema["properties"]) == parsed


def test_request_id_pattern_matches_the_code() -> None:
    (param,) = SPEC["paths"]["/prompts/{id}"]["parameters"]
    assert param["schema"]["pattern"] == p.REQUEST_ID_PATTERN
    p.check_request_id(SAMPLE_ID)  # the sample the routing test uses is a valid id


def test_echo_body_limit_matches_the_code() -> None:
    schema = SPEC["paths"]["/"]["post"]["requestBody"]["content"]["*/*"]["schema"]
    assert schema["maxLength"] == p.MAX_BODY_BYTES


# -- enums -----------------------------------------------------------------------------------


@pytest.mark.parametrize("schema", ["Accepted", "Prompt"])
def test_job_status_enum_is_the_domain_enum(schema: str) -> None:
    assert SCHEMAS[schema]["properties"]["status"]["enum"] == [s.value for s in JobStatus]


def test_compute_state_enums_are_the_domain_enum() -> None:
    states = [s.value for s in ComputeState.reported()]
    assert SCHEMAS["Compute"]["properties"]["state"]["enum"] == states
    assert SCHEMAS["Status"]["properties"]["compute"]["properties"]["state"]["enum"] == states
    assert resolve(SCHEMAS["Accepted"]["properties"]["compute"]) is SCHEMAS["Compute"]


def test_budget_state_enum_covers_what_the_policy_answers() -> None:
    answers = {
        budget_state(spend, warn, cap)
        for spend in (None, 0.0, 16.0, 25.0)
        for warn in (None, 15.0)
        for cap in (None, 20.0)
    }
    assert answers == set(SCHEMAS["Status"]["properties"]["budget"]["properties"]["state"]["enum"])


def test_the_spec_is_valid_openapi() -> None:
    from openapi_spec_validator import validate

    validate(SPEC)  # a YAML slip (a comma in a flow mapping) would quietly change a schema


# Statuses the gateway (or API Gateway) may answer itself, with `{"message"}`, before the router.
GATEWAY_STATUSES = {"400", "401", "403", "413", "503"}
RESPONSES = SPEC["components"]["responses"]


def response_schema(ref: dict[str, str]) -> dict[str, Any]:
    name = ref["$ref"].removeprefix("#/components/responses/")
    return RESPONSES[name]["content"]["application/json"]["schema"]


def test_every_error_response_has_the_shapes_that_really_come_back() -> None:
    error, message = {"$ref": "#/components/schemas/Error"}, {"$ref": "#/components/schemas/GatewayMessage"}
    assert response_schema({"$ref": "#/components/responses/Error"}) == error
    assert response_schema({"$ref": "#/components/responses/GatewayOrError"}) == {"oneOf": [error, message]}
    for path, item in SPEC["paths"].items():
        for method in (m for m in METHODS if m in item):
            responses = item[method]["responses"]
            for code, response in responses.items():
                if code.startswith("2"):
                    continue
                assert set(response) == {"$ref"}, (method, path, code)
                schema = response_schema(response)
                if code in GATEWAY_STATUSES:
                    assert schema == {"oneOf": [error, message]}, (method, path, code)
                elif code == "411":
                    assert schema == message, (method, path, code)
                else:
                    assert schema == error, (method, path, code)
            if path != "/" or method != "post":  # the open echo has no authorizer
                assert {"401", "403"} <= set(responses), (method, path)


def test_the_schemas_accept_what_the_parser_accepts_and_reject_what_it_rejects() -> None:
    v = validator("PromptRequest")
    good = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": p.MAX_TOKENS_LIMIT,
            "temperature": p.TEMPERATURE_MAX, "model": "a/b", "idempotency_key": "k" * 8}
    p.parse_prompt(good)
    v.validate(good)
    for bad in (
        {**good, "max_tokens": p.MAX_TOKENS_LIMIT + 1},
        {**good, "temperature": p.TEMPERATURE_MAX + 0.5},
        {**good, "model": "a b"},
        {**good, "idempotency_key": "k" * 7},
        {**good, "extra": 1},
        {**good, "messages": []},
        {**good, "messages": [{"role": "robot", "content": "x"}]},
    ):
        assert not v.is_valid(bad), bad
        with pytest.raises(Exception):  # noqa: B017 - any domain rejection will do here
            p.parse_prompt(bad)


# -- routing ----------------------------------------------------------------------------------


def spec_operations() -> list[tuple[str, str]]:
    return [(m, path) for path, item in SPEC["paths"].items() for m in METHODS if m in item]


def concrete(path: str) -> str:
    return path.replace("{id}", SAMPLE_ID)


def answer(method: str, path: str) -> dict[str, Any]:
    app = create_app(None, Identity())  # the MVP wiring: routed operations answer 503, not no_route
    event = make_event(method.upper(), concrete(path), {"content-type": "application/json"},
                       b'{"messages": [{"role": "user", "content": "x"}]}', dict(CLAIMS), "127.0.0.1")
    return app.resolve(event, None)


def is_no_route(result: dict[str, Any]) -> bool:
    return result["statusCode"] == 404 and json.loads(result["body"])["error"]["code"] == "no_route"


def test_the_spec_has_the_operations_of_the_design() -> None:
    assert set(spec_operations()) == {
        ("post", "/"), ("post", "/prompts"), ("get", "/prompts/{id}"), ("delete", "/prompts/{id}"), ("get", "/status"),
    }


@pytest.mark.parametrize(("method", "path"), spec_operations())
def test_every_spec_operation_is_routed(method: str, path: str) -> None:
    result = answer(method, path)
    assert not is_no_route(result), result
    assert result["statusCode"] < 500 or json.loads(result["body"])["error"]["code"] == "no_queue"


@pytest.mark.parametrize(
    ("method", "path"),
    [(m, path) for path, item in SPEC["paths"].items() for m in METHODS if m not in item],
)
def test_operations_outside_the_spec_are_not_routed(method: str, path: str) -> None:
    assert is_no_route(answer(method, path))
