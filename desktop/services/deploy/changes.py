"""What a deploy or delete will change, before it runs: a CloudFormation change set as
rows (add / modify with replacement / remove), or, where change sets are not used (moto's
are broken), the plan of a direct create/update; and the resources a delete removes."""

from __future__ import annotations

import math
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import WaiterError

from desktop.services.deploy.errors import AWS_ERRORS, DeployError, does_not_exist, translate

CAPABILITIES = ["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"]
NO_CHANGES = ("didn't contain changes", "No updates are to be performed", "No changes")


@dataclass(frozen=True)
class ChangeRow:
    """One line of a change set: what happens to which resource."""

    action: str  # Add, Modify, Remove, Import, Dynamic
    logical_id: str
    resource_type: str
    replacement: str = ""  # True, False, Conditional ("" for add/remove)
    scope: str = ""  # Properties, Tags, ...

    @property
    def replaces(self) -> bool:
        return self.replacement in {"True", "Conditional"}


@dataclass(frozen=True)
class ChangeSetReview:
    """A created change set, or (`change_set_id == ""`) the plan of a direct deploy/delete.

    It carries what executing it needs (template, parameters, tags), so the step that runs
    it sends exactly what was reviewed.
    """

    stack_name: str
    change_set_id: str
    change_type: str  # CREATE, UPDATE, DELETE
    rows: list[ChangeRow]
    stack_id: str = ""
    template_url: str = ""
    parameters: Mapping[str, str] = field(default_factory=dict)
    tags: Mapping[str, str] = field(default_factory=dict)
    no_changes: bool = False  # CloudFormation found nothing to change: there is nothing to run

    @property
    def empty(self) -> bool:
        return not self.rows


def parameter_list(values: Mapping[str, str]) -> list[dict[str, str]]:
    """{name: value} as CloudFormation's Parameters."""
    return [{"ParameterKey": k, "ParameterValue": str(v)} for k, v in values.items()]


def tag_list(values: Mapping[str, str]) -> list[dict[str, str]]:
    """{key: value} as CloudFormation's Tags."""
    return [{"Key": k, "Value": v} for k, v in values.items()]


def describe_stack(cfn: Any, stack_name: str) -> dict[str, Any] | None:
    """The stack, or None when there is none (or only a deleted one)."""
    try:
        stacks = cfn.describe_stacks(StackName=stack_name)["Stacks"]
    except AWS_ERRORS as exc:
        if does_not_exist(exc):
            return None
        raise translate(exc, f"looking up stack {stack_name}") from exc
    if not stacks or stacks[0]["StackStatus"] == "DELETE_COMPLETE":
        return None
    return dict(stacks[0])


def create_change_set(cfn: Any, stack_name: str, template_url: str, parameters: Mapping[str, str],
                      tags: Mapping[str, str] | None = None, *, use_change_sets: bool = True,
                      delay_s: float = 2.0, timeout_s: float = 600) -> ChangeSetReview:
    """Create a change set and wait for it (botocore's change_set_create_complete waiter);
    a set with no changes is deleted and returned empty. Without change sets this only
    plans: no rows are known in advance (flow.review adds the template's for a create)."""
    tags = dict(tags or {})
    existing = describe_stack(cfn, stack_name)
    if existing is not None and existing["StackStatus"] == "REVIEW_IN_PROGRESS":
        existing = None  # a change set left from a cancelled review: still a create
    change_type = "UPDATE" if existing else "CREATE"
    if existing and existing["StackStatus"] in {"ROLLBACK_COMPLETE", "ROLLBACK_FAILED"}:
        raise DeployError(f"Stack {stack_name} is in {existing['StackStatus']} after a failed create and "
                          "cannot be updated: delete it first.", code="NeedsDelete")
    stack_id = existing["StackId"] if existing else ""
    plan = ChangeSetReview(stack_name, "", change_type, [], stack_id, template_url, dict(parameters), tags)
    if not use_change_sets:
        return plan
    name = f"tinyllama-{datetime.now(UTC):%Y%m%d%H%M%S}-{uuid.uuid4().hex[:6]}"
    try:
        created = cfn.create_change_set(
            StackName=stack_name, ChangeSetName=name, ChangeSetType=change_type, TemplateURL=template_url,
            Parameters=parameter_list(parameters), Capabilities=CAPABILITIES, Tags=tag_list(tags))
    except AWS_ERRORS as exc:
        raise translate(exc, "creating the change set") from exc
    change_set_id, stack_id = created["Id"], created.get("StackId", stack_id)
    attempts = max(1, math.ceil(timeout_s / delay_s)) if delay_s > 0 else 300
    try:
        cfn.get_waiter("change_set_create_complete").wait(
            ChangeSetName=change_set_id, StackName=stack_name,
            WaiterConfig={"Delay": delay_s, "MaxAttempts": attempts})
    except WaiterError as exc:
        last = exc.last_response or {}
        reason = str(last.get("StatusReason", ""))
        if last.get("Status") == "FAILED" and any(text in reason for text in NO_CHANGES):
            discard_change_set(cfn, ChangeSetReview(stack_name, change_set_id, change_type, [], stack_id))
            return ChangeSetReview(stack_name, "", change_type, [], stack_id, template_url, dict(parameters), tags,
                                   no_changes=True)
        if last.get("Status") == "FAILED":
            raise DeployError(f"The change set could not be created: {reason}", code="ChangeSetFailed") from exc
        if "Max attempts exceeded" in str(exc):
            raise DeployError(f"The change set was still being created after {timeout_s / 60:.0f} minutes.",
                              code="Timeout") from exc
        raise translate(exc, "creating the change set") from exc
    rows: list[ChangeRow] = []
    try:
        for page in cfn.get_paginator("describe_change_set").paginate(ChangeSetName=change_set_id,
                                                                      StackName=stack_name):
            rows += _rows(page.get("Changes", []))
    except AWS_ERRORS as exc:
        raise translate(exc, "reading the change set") from exc
    return ChangeSetReview(stack_name, change_set_id, change_type, rows, stack_id, template_url, dict(parameters),
                           tags)


def discard_change_set(cfn: Any, review: ChangeSetReview) -> None:
    """Delete a reviewed change set that will not run (and the empty stack a CREATE one made)."""
    if not review.change_set_id:
        return
    try:
        cfn.delete_change_set(ChangeSetName=review.change_set_id, StackName=review.stack_name)
        if review.change_type == "CREATE":
            cfn.delete_stack(StackName=review.stack_id or review.stack_name)
    except AWS_ERRORS as exc:
        raise translate(exc, "discarding the change set") from exc


def plan_delete(cfn: Any, stack_name: str, region: str) -> ChangeSetReview:
    """The resources a delete removes, as Remove rows (the same review as a deploy)."""
    stack = describe_stack(cfn, stack_name)
    if stack is None:
        raise DeployError(f"There is no stack named {stack_name} in {region}.", code="NoStack")
    rows: list[ChangeRow] = []
    try:
        for page in cfn.get_paginator("list_stack_resources").paginate(StackName=stack_name):
            for r in page.get("StackResourceSummaries", []):
                if r.get("ResourceStatus") != "DELETE_COMPLETE":
                    rows.append(ChangeRow("Remove", r["LogicalResourceId"], r["ResourceType"]))
    except AWS_ERRORS as exc:
        raise translate(exc, "listing the stack's resources") from exc
    return ChangeSetReview(stack_name, "", "DELETE", rows, stack["StackId"])


def _template(template_text: str) -> dict[str, Any]:
    import yaml

    class _Loader(yaml.SafeLoader):
        pass

    # CloudFormation's short forms (!Ref, !Sub, …) only need to parse, not resolve.
    _Loader.add_multi_constructor("!", lambda loader, suffix, node: None)
    try:
        body = yaml.load(template_text, Loader=_Loader)  # a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise DeployError(f"The template is not valid YAML: {exc}", code="Template") from exc
    return body if isinstance(body, dict) else {}


def planned_adds(template_text: str) -> list[ChangeRow]:
    """A template's resources as Add rows: the review of a create without a change set."""
    resources = _template(template_text).get("Resources") or {}
    return [ChangeRow("Add", name, str(r.get("Type", ""))) for name, r in resources.items() if isinstance(r, dict)]


def template_parameters(template_text: str) -> set[str]:
    """The names of a template's Parameters."""
    return set(_template(template_text).get("Parameters") or {})


def _rows(changes: list[dict[str, Any]]) -> list[ChangeRow]:
    rows = []
    for change in changes:
        rc = change.get("ResourceChange", {})
        rows.append(ChangeRow(rc.get("Action", ""), rc.get("LogicalResourceId", ""), rc.get("ResourceType", ""),
                              rc.get("Replacement", "") if rc.get("Action") == "Modify" else "",
                              ", ".join(rc.get("Scope", []))))
    return rows
