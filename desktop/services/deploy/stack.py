"""`StackDeployer`: one account and region's AWS clients, and the stack operations on them.

Each method is the small step the flow (desktop/services/deploy/flow.py) calls; the work
is in the module of its job (bucket, changes, events). Clients are injected (tests pass
moto's or a Stubber's) or made from `session`.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from desktop.services.deploy import bucket, changes, events
from desktop.services.deploy.bucket import Artifact
from desktop.services.deploy.changes import CAPABILITIES, NO_CHANGES, ChangeSetReview, parameter_list, tag_list
from desktop.services.deploy.errors import AWS_ERRORS, DeployError, error_message, translate
from desktop.services.deploy.events import StackWatcher, WatchUpdate


@dataclass(frozen=True)
class Identity:
    """Who the credentials belong to (sts get-caller-identity)."""

    account: str
    arn: str
    user_id: str
    region: str


class StackDeployer:
    """CloudFormation, S3 and STS steps of a deployment; clients injected or built from `session`.

    `session` is a boto3 Session (a profile, or typed keys) used only for clients not given.
    `wait` is how `follow` pauses between polls and `waiter_delay_s` how long botocore's
    waiters pause (tests pass a no-op and 0).
    """

    def __init__(self, cfn_client: Any = None, s3_client: Any = None, sts_client: Any = None, *,
                 session: Any = None, region: str | None = None, use_change_sets: bool = True,
                 wait: Callable[[float], None] = time.sleep, waiter_delay_s: float = 2.0) -> None:
        self._session = session
        self._region = region
        self._cfn = cfn_client
        self._s3 = s3_client
        self._sts = sts_client
        self.use_change_sets = use_change_sets
        self.wait = wait
        self.waiter_delay_s = waiter_delay_s

    def _client(self, name: str) -> Any:
        if self._session is None:
            import boto3

            self._session = boto3.session.Session(region_name=self._region)
        return self._session.client(name, region_name=self._region)

    @property
    def cfn(self) -> Any:
        if self._cfn is None:
            self._cfn = self._client("cloudformation")
        return self._cfn

    @property
    def s3(self) -> Any:
        if self._s3 is None:
            self._s3 = self._client("s3")
        return self._s3

    @property
    def sts(self) -> Any:
        if self._sts is None:
            self._sts = self._client("sts")
        return self._sts

    @property
    def region(self) -> str:
        return str(self._region or self.cfn.meta.region_name)

    def check_identity(self) -> Identity:
        """The caller's account and ARN; DeployError says what is missing when it fails."""
        try:
            who = self.sts.get_caller_identity()
        except AWS_ERRORS as exc:
            raise translate(exc, "checking who you are (sts get-caller-identity)") from exc
        return Identity(who["Account"], who["Arn"], who["UserId"], self.region)

    # the bootstrap bucket and uploads (bucket.py)

    def bootstrap_bucket_name(self, account: str) -> str:
        return bucket.bootstrap_bucket_name(account, self.region)

    def ensure_bootstrap_bucket(self, account: str) -> tuple[str, bool]:
        """Create (or reuse, tightened again) the artifact bucket; returns (name, created)."""
        return bucket.ensure_bootstrap_bucket(self.s3, account, self.region, delay_s=self.waiter_delay_s)

    def upload(self, bucket_name: str, artifacts: Iterable[Artifact], prefix: str = "tinyllama") -> dict[str, str]:
        """Upload under content-hashed keys; returns {artifact name: key}."""
        return bucket.upload(self.s3, bucket_name, artifacts, prefix)

    def template_url(self, bucket_name: str, key: str) -> str:
        return bucket.template_url(self.s3, self.region, bucket_name, key)

    def empty_bucket(self, bucket_name: str) -> int:
        """Delete every object version of a bucket; returns how many."""
        return bucket.empty_bucket(self.s3, bucket_name)

    # review (changes.py)

    def describe(self, stack_name: str) -> dict[str, Any] | None:
        """The stack, or None when there is none (or only a deleted one)."""
        return changes.describe_stack(self.cfn, stack_name)

    def outputs(self, stack_name: str) -> dict[str, str]:
        """The stack's Outputs as {key: value}."""
        stack = self.describe(stack_name)
        if stack is None:
            raise DeployError(f"There is no stack named {stack_name} in {self.region}.", code="NoStack")
        return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}

    def create_change_set(self, stack_name: str, template_url: str, parameters: Mapping[str, str],
                          tags: Mapping[str, str] | None = None, timeout_s: float = 600) -> ChangeSetReview:
        """A change set's rows (or, without change sets, the plan of a direct deploy)."""
        return changes.create_change_set(self.cfn, stack_name, template_url, parameters, tags,
                                         use_change_sets=self.use_change_sets, delay_s=self.waiter_delay_s,
                                         timeout_s=timeout_s)

    def discard_change_set(self, review: ChangeSetReview) -> None:
        changes.discard_change_set(self.cfn, review)

    def plan_delete(self, stack_name: str) -> ChangeSetReview:
        return changes.plan_delete(self.cfn, stack_name, self.region)

    # run and follow (events.py)

    def execute(self, review: ChangeSetReview) -> StackWatcher:
        """Run a reviewed change (change set, direct create/update, or delete) with what the
        review carries; returns the watcher to follow it with.

        The operation is sent with a fresh ClientRequestToken (CloudFormation stamps it on
        every event the operation causes, and a retried call is not run twice), and the
        stack's newest event before it starts marks where its events begin.
        """
        stack = review.stack_id or review.stack_name
        request_token = _request_token(review.change_type)
        direct_create = review.change_type == "CREATE" and not review.change_set_id
        after = None if direct_create else events.newest_event_id(self.cfn, stack)
        try:
            if review.change_type == "DELETE":
                self.cfn.delete_stack(StackName=stack, ClientRequestToken=request_token)
            elif review.change_set_id:
                self.cfn.execute_change_set(ChangeSetName=review.change_set_id, StackName=review.stack_name,
                                            ClientRequestToken=request_token)
            else:
                stack = self._direct(review, request_token, direct_create)
        except AWS_ERRORS as exc:
            raise translate(exc, f"starting the {review.change_type.lower()} of {review.stack_name}") from exc
        return StackWatcher(self.cfn, stack, after_event_id=after, expected=len(review.rows) or 1,
                            operation=review.change_type, token=request_token)

    def _direct(self, review: ChangeSetReview, request_token: str, create: bool) -> str:
        kwargs = {"StackName": review.stack_name, "TemplateURL": review.template_url,
                  "Parameters": parameter_list(review.parameters), "Capabilities": CAPABILITIES,
                  "Tags": tag_list(review.tags), "ClientRequestToken": request_token}
        if create:
            return str(self.cfn.create_stack(**kwargs)["StackId"])
        try:
            return str(self.cfn.update_stack(**kwargs)["StackId"])
        except AWS_ERRORS as exc:
            if any(text in error_message(exc) for text in NO_CHANGES):
                return review.stack_id or review.stack_name
            raise

    def cancel(self, watcher: StackWatcher) -> str:
        """Stop a running operation: an update is cancelled (CloudFormation rolls it back);
        a create is deleted (nothing half-made is left). Returns what was done, in words."""
        status = watcher.status or events.stack_status(self.cfn, watcher.stack)
        try:
            if status == "UPDATE_IN_PROGRESS":
                self.cfn.cancel_update_stack(StackName=watcher.stack, ClientRequestToken=_request_token("CANCEL"))
                return "Update cancelled; CloudFormation is rolling the stack back to how it was."
            if status in {"CREATE_IN_PROGRESS", "ROLLBACK_IN_PROGRESS", "CREATE_FAILED", "ROLLBACK_COMPLETE",
                          "REVIEW_IN_PROGRESS"}:
                self.cfn.delete_stack(StackName=watcher.stack, ClientRequestToken=_request_token("DELETE"))
                watcher.operation = "DELETE"
                return "Create cancelled; the stack and what it made so far are being deleted."
        except AWS_ERRORS as exc:
            raise translate(exc, "cancelling") from exc
        return f"Nothing to cancel: the stack is {status}."

    def follow(self, watcher: StackWatcher, on_update: Callable[[WatchUpdate], None] | None = None,
               interval_s: float = 5.0, should_stop: Callable[[], bool] = lambda: False) -> WatchUpdate:
        """Poll until the stack settles (the CLI's loop; the wizard polls on a QTimer).

        Not a botocore stack_*_complete waiter: those return only at the end, and a person
        watching wants each event as it comes (and the rollback followed to its end)."""
        while True:
            update = watcher.poll()
            if on_update is not None:
                on_update(update)
            if update.done or should_stop():
                return update
            self.wait(interval_s)


def _request_token(operation: str) -> str:
    """A ClientRequestToken: unique per operation, readable in the console's Events tab
    (CloudFormation allows letters, digits and '-', up to 128 characters)."""
    return f"tinyllama-{operation.lower()}-{uuid.uuid4().hex}"
