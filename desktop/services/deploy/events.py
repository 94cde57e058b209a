"""Following one stack operation's events until the stack settles, and its outcome in words."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from desktop.services.deploy.errors import AWS_ERRORS, does_not_exist, translate

TERMINAL_OK = {"CREATE_COMPLETE", "UPDATE_COMPLETE", "DELETE_COMPLETE", "IMPORT_COMPLETE"}
TERMINAL_FAILED = {
    "CREATE_FAILED", "ROLLBACK_COMPLETE", "ROLLBACK_FAILED", "DELETE_FAILED",
    "UPDATE_ROLLBACK_COMPLETE", "UPDATE_ROLLBACK_FAILED", "UPDATE_FAILED",
    "IMPORT_ROLLBACK_COMPLETE", "IMPORT_ROLLBACK_FAILED",
}
CANCELLED_REASONS = ("Resource creation cancelled", "Resource update cancelled", "Resource deletion cancelled")


@dataclass(frozen=True)
class StackEvent:
    """One stack event, as a person reads it."""

    event_id: str
    timestamp: datetime
    logical_id: str
    resource_type: str
    status: str
    reason: str = ""
    client_request_token: str = ""  # the token of the operation that caused it ("" if none was sent)

    @property
    def failed(self) -> bool:
        return self.status.endswith("_FAILED")


@dataclass
class WatchUpdate:
    """What one `StackWatcher.poll()` learned."""

    events: list[StackEvent]
    status: str
    progress: float  # 0..1
    done: bool = False
    succeeded: bool = False
    failure: str = ""  # the reason, in words
    advice: str = ""  # what to do next
    rolled_back: bool = False


def explain_failure(reason: str) -> str:
    """What to do about a CloudFormation failure reason."""
    text = reason.lower()
    if "vcpu" in text or "vcpulimitexceeded" in text:
        return ("Your account's quota for GPU instances is too low. In Service Quotas ask for "
                "'Running On-Demand G and VT instances' of at least 4 vCPUs (8 for 2xlarge), then deploy again.")
    if "insufficientinstancecapacity" in text or "insufficient capacity" in text:
        return "AWS has no spare GPU of that type in this zone now: pick another instance type or region."
    if "smaller than snapshot" in text:  # EC2: "Volume of size 40GB is smaller than snapshot ..., expect size >= 75GB"
        return ("The worker image needs a bigger root volume than the stack asked for: set Volume (RootVolumeGiB) "
                "to at least the size the reason names, or choose a baked image, then deploy again.")
    if "not authorized" in text or "accessdenied" in text or "access denied" in text:
        return "The deploying identity lacks a permission named above: add it to the role or user, then retry."
    if "already exists" in text:
        return "A resource with that name exists outside this stack: delete it or choose another stack name."
    if "limitexceeded" in text or "limit exceeded" in text or "maximum number" in text:
        return "An account limit was reached: delete unused resources of that kind or ask for a higher quota."
    if "subscription" in text or "opt-in" in text or "optinrequired" in text:
        return "The account is not yet enabled for this service in this region: enable it in the console."
    return "Fix what the reason names and deploy again."


def _event(raw: dict[str, Any]) -> StackEvent:
    return StackEvent(raw["EventId"], raw["Timestamp"], raw.get("LogicalResourceId", ""),
                      raw.get("ResourceType", ""), raw.get("ResourceStatus", ""),
                      raw.get("ResourceStatusReason", ""), raw.get("ClientRequestToken", ""))


def newest_event_id(cfn: Any, stack: str) -> str | None:
    """The id of the stack's newest event (None when it has none or does not exist): the
    line after which a new operation's events begin. One page: the newest comes first."""
    try:
        events = cfn.describe_stack_events(StackName=stack).get("StackEvents", [])
    except AWS_ERRORS as exc:
        if does_not_exist(exc):
            return None
        raise translate(exc, f"reading the events of {stack}") from exc
    return str(events[0]["EventId"]) if events else None


def stack_status(cfn: Any, stack: str) -> str:
    """Where the stack stands now; DELETE_COMPLETE once it is gone."""
    try:
        stacks = cfn.describe_stacks(StackName=stack)["Stacks"]
    except AWS_ERRORS as exc:
        if does_not_exist(exc):
            return "DELETE_COMPLETE"
        raise translate(exc, "reading the stack's status") from exc
    return str(stacks[0]["StackStatus"]) if stacks else "DELETE_COMPLETE"


class StackWatcher:
    """Follows one stack operation's events until the stack settles; one `poll()` is two API calls.

    Which events belong to the operation is decided by what CloudFormation says, never by
    comparing its timestamps with this machine's clock (a clock a minute fast would hide
    every event): events newer than `after_event_id` (the newest event before the
    operation started; None for a new stack, whose events are all ours) are the
    operation's. `token` is the ClientRequestToken it was sent with; CloudFormation stamps
    it on the events it causes (`StackEvent.client_request_token`). Events carrying
    another token are still shown: a rollback or cancel started from the console belongs
    to this operation's outcome. Keyed by the stack id when known, so a deleted stack can
    still be described.
    """

    def __init__(self, cfn: Any, stack: str, *, after_event_id: str | None = None, expected: int = 0,
                 operation: str = "CREATE", token: str = "") -> None:
        self.cfn = cfn
        self.stack = stack
        self.after_event_id = after_event_id
        self.expected = max(expected, 1)
        self.operation = operation
        self.token = token
        self.seen: set[str] = set()
        self.events: list[StackEvent] = []
        self.status = ""
        self._settled: set[str] = set()

    def _new_events(self) -> list[StackEvent]:
        """Pages (newest first) until an event already seen, or the operation's start line."""
        fresh: list[StackEvent] = []
        for page in self.cfn.get_paginator("describe_stack_events").paginate(StackName=self.stack):
            raws = page.get("StackEvents", [])
            known = next((i for i, raw in enumerate(raws)
                          if raw["EventId"] in self.seen or raw["EventId"] == self.after_event_id), None)
            fresh += [_event(raw) for raw in raws[:known]]
            if known is not None:
                break  # the rest is older: no need to ask for the next page
        fresh.reverse()
        self.seen.update(e.event_id for e in fresh)
        return fresh

    def poll(self) -> WatchUpdate:
        """New events (oldest first) and where the stack stands."""
        try:
            fresh = self._new_events()
        except AWS_ERRORS as exc:
            if not does_not_exist(exc):
                raise translate(exc, "reading stack events") from exc
            fresh = []
        self.status = stack_status(self.cfn, self.stack)
        self.events.extend(fresh)
        for event in fresh:
            if event.resource_type != "AWS::CloudFormation::Stack" and (
                    event.status.endswith("_COMPLETE") or event.status.endswith("_FAILED")):
                self._settled.add(event.logical_id)
        done = self.status in TERMINAL_OK or self.status in TERMINAL_FAILED
        update = WatchUpdate(fresh, self.status, 1.0 if done else min(len(self._settled) / self.expected, 0.99),
                             done=done)
        if done:
            update.succeeded = self.status in TERMINAL_OK
            update.rolled_back = "ROLLBACK" in self.status
            if not update.succeeded:
                update.failure = self.failure_reason()
                update.advice = self.advice()
        return update

    def failure_reason(self) -> str:
        """The first real failure (not the 'cancelled' knock-on ones), in words."""
        for event in self.events:
            if event.failed and event.reason and not event.reason.startswith(CANCELLED_REASONS):
                if event.resource_type == "AWS::CloudFormation::Stack" and any(
                        e.failed and e.resource_type != "AWS::CloudFormation::Stack" for e in self.events):
                    continue
                return f"{event.logical_id} ({event.resource_type}) {event.status}: {event.reason}"
        for event in self.events:
            if event.reason and event.resource_type == "AWS::CloudFormation::Stack" and (
                    "ROLLBACK" in event.status or event.failed):
                return f"{event.status}: {event.reason}"
        return f"The stack ended in {self.status}."

    def advice(self) -> str:
        """What to do next, given the failure and where the stack was left."""
        first = explain_failure(self.failure_reason())
        if self.status == "ROLLBACK_COMPLETE":
            return (first + " Everything created was removed again, but a stack in ROLLBACK_COMPLETE cannot be "
                    "updated: delete it, then deploy again.")
        if self.status == "UPDATE_ROLLBACK_COMPLETE":
            return first + " The stack is back as it was before the update and keeps working."
        if self.status in {"ROLLBACK_FAILED", "UPDATE_ROLLBACK_FAILED"}:
            return (first + " The rollback itself failed: fix the resource named, then 'Continue update "
                    "rollback' in the CloudFormation console, or delete the stack.")
        if self.status == "DELETE_FAILED":
            return ("Some resources could not be deleted (often a data bucket that is not empty): empty it "
                    "and delete again.")
        return first
