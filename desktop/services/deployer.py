"""Deploy, update and delete a TinyLlama stack with CloudFormation. Qt-free.

The wizard and `tinyllama deploy` both drive this one class, step by step:

1. `check_identity()` — who the credentials are (STS), or what is missing, in words.
2. `ensure_bootstrap_bucket()` — a private, encrypted, versioned bucket for artifacts,
   created once per account and region and reused after (what `cdk bootstrap` and
   `sam deploy --resolve-s3` do).
3. `upload()` — the router zip, worker files and the template, under content-hashed keys,
   so a change set sees a code change as a change.
4. `create_change_set()` → `ChangeSetReview` rows (add / modify with replacement / remove),
   then `execute_change_set()` or `discard_change_set()`. moto's change sets are broken,
   so `StackDeployer(use_change_sets=False)` deploys with create/update directly.
5. `watch()` → a `StackWatcher` whose `poll()` returns the stack events since the start,
   the status, a progress fraction and, once the stack settles, the outcome with the
   failure reason in words. Rollbacks are followed to their end. `cancel()` stops it.

Every botocore error is translated into a `DeployError` whose message a person can act on.
"""

from __future__ import annotations

import hashlib
import secrets
import string
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from desktop.core.errors import AppError

BOOTSTRAP_PREFIX = "tinyllama-bootstrap"
TERMINAL_OK = {"CREATE_COMPLETE", "UPDATE_COMPLETE", "DELETE_COMPLETE", "IMPORT_COMPLETE"}
TERMINAL_FAILED = {
    "CREATE_FAILED", "ROLLBACK_COMPLETE", "ROLLBACK_FAILED", "DELETE_FAILED",
    "UPDATE_ROLLBACK_COMPLETE", "UPDATE_ROLLBACK_FAILED", "UPDATE_FAILED",
    "IMPORT_ROLLBACK_COMPLETE", "IMPORT_ROLLBACK_FAILED",
}
CANCELLED_REASONS = ("Resource creation cancelled", "Resource update cancelled", "Resource deletion cancelled")
NO_CHANGES = ("didn't contain changes", "No updates are to be performed", "No changes")


class DeployError(AppError):
    """A deployment step failed; the message says what happened and what to do."""

    title = "Deployment failed"


def _client_error_code(exc: BaseException) -> str:
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


def _client_error_message(exc: BaseException) -> str:
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Message", "")) or str(exc)


def translate(exc: BaseException, doing: str) -> DeployError:
    """A botocore exception as a DeployError that says what to do next."""
    name = type(exc).__name__
    code = _client_error_code(exc)
    message = _client_error_message(exc)
    if name in {"NoCredentialsError", "PartialCredentialsError"}:
        return DeployError(f"No AWS credentials while {doing}: choose a profile from ~/.aws or type an "
                           "access key id and secret.", code="NoCredentials")
    if name == "ProfileNotFound":
        return DeployError(f"{exc}. Pick one of the profiles in ~/.aws/config, or type keys in.",
                           code="ProfileNotFound")
    if name in {"EndpointConnectionError", "ConnectTimeoutError", "ReadTimeoutError"}:
        return DeployError(f"AWS could not be reached while {doing}: check the network and the region.",
                           code="Network")
    if code in {"InvalidClientTokenId", "SignatureDoesNotMatch", "UnrecognizedClientException"}:
        return DeployError(f"AWS does not recognise these credentials ({code}) while {doing}: the access key "
                           "is wrong or was deleted.", code=code)
    if code in {"ExpiredToken", "ExpiredTokenException", "RequestExpired"}:
        return DeployError(f"The credentials have expired while {doing}: sign in again (e.g. `aws sso login`) "
                           "and retry.", code=code)
    if code in {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation"}:
        return DeployError(f"Permission denied while {doing}: {message} Ask your administrator for that "
                           "permission, or use a profile that has it.", code=code)
    if code:
        return DeployError(f"AWS refused while {doing}: {message} ({code})", code=code)
    return DeployError(f"{doing[:1].upper()}{doing[1:]} failed: {exc}")


@dataclass(frozen=True)
class Identity:
    """Who the credentials belong to (sts get-caller-identity)."""

    account: str
    arn: str
    user_id: str
    region: str


@dataclass(frozen=True)
class Artifact:
    """A file to upload: where it comes from and the key's prefix; the key gets its hash."""

    name: str
    path: Path
    keep_name: bool = True  # worker wheels must keep their own file name


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
    """A created change set, or (`change_set_id == ""`) the plan of a direct deploy/delete."""

    stack_name: str
    change_set_id: str
    change_type: str  # CREATE, UPDATE, DELETE
    rows: list[ChangeRow]
    stack_id: str = ""

    @property
    def empty(self) -> bool:
        return not self.rows


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
    if "not authorized" in text or "accessdenied" in text or "access denied" in text:
        return "The deploying identity lacks a permission named above: add it to the role or user, then retry."
    if "already exists" in text:
        return "A resource with that name exists outside this stack: delete it or choose another stack name."
    if "limitexceeded" in text or "limit exceeded" in text or "maximum number" in text:
        return "An account limit was reached: delete unused resources of that kind or ask for a higher quota."
    if "subscription" in text or "opt-in" in text or "optinrequired" in text:
        return "The account is not yet enabled for this service in this region: enable it in the console."
    return "Fix what the reason names and deploy again."


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
        fresh: list[StackEvent] = []
        token = None
        while True:
            kwargs: dict[str, Any] = {"StackName": self.stack}
            if token:
                kwargs["NextToken"] = token
            page = self.cfn.describe_stack_events(**kwargs)
            stop = False
            for raw in page.get("StackEvents", []):  # newest first
                if raw["EventId"] in self.seen or raw["EventId"] == self.after_event_id:
                    stop = True
                    break
                fresh.append(StackEvent(raw["EventId"], raw["Timestamp"], raw.get("LogicalResourceId", ""),
                                        raw.get("ResourceType", ""), raw.get("ResourceStatus", ""),
                                        raw.get("ResourceStatusReason", ""), raw.get("ClientRequestToken", "")))
            token = page.get("NextToken")
            if stop or not token:
                break
        fresh.reverse()
        self.seen.update(e.event_id for e in fresh)
        return fresh

    def _stack_status(self) -> str:
        try:
            stacks = self.cfn.describe_stacks(StackName=self.stack)["Stacks"]
        except Exception as exc:
            if "does not exist" in _client_error_message(exc):
                return "DELETE_COMPLETE"
            raise translate(exc, "reading the stack's status") from exc
        return str(stacks[0]["StackStatus"]) if stacks else "DELETE_COMPLETE"

    def poll(self) -> WatchUpdate:
        """New events (oldest first) and where the stack stands."""
        try:
            fresh = self._new_events()
        except Exception as exc:
            if "does not exist" in _client_error_message(exc):
                fresh = []
            else:
                raise translate(exc, "reading stack events") from exc
        self.status = self._stack_status()
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


def temporary_password(length: int = 16) -> str:
    """A password Cognito's default policy accepts: upper, lower, digit and symbol."""
    symbols = "!#$%&*+-=?@^_"
    alphabet = string.ascii_letters + string.digits + symbols
    while True:
        pw = "".join(secrets.choice(alphabet) for _ in range(length))
        if (any(c.islower() for c in pw) and any(c.isupper() for c in pw)
                and any(c.isdigit() for c in pw) and any(c in symbols for c in pw)):
            return pw


class StackDeployer:
    """CloudFormation, S3 and STS steps of a deployment; clients injected or built from `session`.

    `session` is a boto3 Session (a profile, or typed keys) used only for clients not given.
    `wait` is how the blocking helpers pause between polls (tests pass a no-op).
    """

    def __init__(self, cfn_client: Any = None, s3_client: Any = None, sts_client: Any = None, *,
                 session: Any = None, region: str | None = None, use_change_sets: bool = True,
                 wait: Callable[[float], None] = time.sleep) -> None:
        self._session = session
        self._region = region
        self._cfn = cfn_client
        self._s3 = s3_client
        self._sts = sts_client
        self.use_change_sets = use_change_sets
        self.wait = wait

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

    # 1. identity ---------------------------------------------------------------------

    def check_identity(self) -> Identity:
        """The caller's account and ARN; DeployError says what is missing when it fails."""
        try:
            who = self.sts.get_caller_identity()
        except Exception as exc:
            raise translate(exc, "checking who you are (sts get-caller-identity)") from exc
        return Identity(who["Account"], who["Arn"], who["UserId"], self.region)

    # 2. bootstrap bucket -------------------------------------------------------------

    def bootstrap_bucket_name(self, account: str) -> str:
        return f"{BOOTSTRAP_PREFIX}-{account}-{self.region}"

    def ensure_bootstrap_bucket(self, account: str) -> tuple[str, bool]:
        """Create (or reuse) the artifact bucket; returns (name, created). Settings are
        re-applied on reuse, so a bucket someone loosened is tightened again."""
        name = self.bootstrap_bucket_name(account)
        created = False
        try:
            try:
                self.s3.head_bucket(Bucket=name, ExpectedBucketOwner=account)
            except Exception as exc:
                if _client_error_code(exc) not in {"404", "NoSuchBucket", "NotFound"}:
                    if _client_error_code(exc) in {"403", "AccessDenied"}:
                        raise DeployError(f"The bucket {name} exists but belongs to another account or is "
                                          "not readable by you.", code="BucketForbidden") from exc
                    raise
                kwargs: dict[str, Any] = {"Bucket": name}
                if self.region != "us-east-1":
                    kwargs["CreateBucketConfiguration"] = {"LocationConstraint": self.region}
                try:
                    self.s3.create_bucket(**kwargs)
                    created = True
                except Exception as create_exc:
                    if _client_error_code(create_exc) != "BucketAlreadyOwnedByYou":
                        raise
            self.s3.put_public_access_block(Bucket=name, PublicAccessBlockConfiguration={
                "BlockPublicAcls": True, "IgnorePublicAcls": True,
                "BlockPublicPolicy": True, "RestrictPublicBuckets": True})
            self.s3.put_bucket_encryption(Bucket=name, ServerSideEncryptionConfiguration={
                "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"},
                           "BucketKeyEnabled": True}]})
            self.s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
            if str(self.s3.meta.endpoint_url).startswith("https://"):
                # Deny plain HTTP, as cdk bootstrap does; skipped only for a local emulator on
                # http://, which this policy would lock the deployer itself out of.
                self.s3.put_bucket_policy(Bucket=name, Policy=_tls_only_policy(name))
        except DeployError:
            raise
        except Exception as exc:
            raise translate(exc, f"preparing the bootstrap bucket {name}") from exc
        return name, created

    # 3. upload -----------------------------------------------------------------------

    def upload(self, bucket: str, artifacts: Iterable[Artifact], prefix: str = "tinyllama") -> dict[str, str]:
        """Upload each artifact under `prefix/<sha256[:16]>/<name>`; returns {name: key}.

        An object already there under that key is not sent again (the hash is the content).
        """
        keys: dict[str, str] = {}
        for artifact in artifacts:
            data = artifact.path.read_bytes()
            digest = hashlib.sha256(data).hexdigest()[:16]
            key = f"{prefix}/{digest}/{artifact.path.name if artifact.keep_name else artifact.name}"
            try:
                try:
                    self.s3.head_object(Bucket=bucket, Key=key)
                except Exception as exc:
                    # 403 too: without s3:ListBucket, S3 answers a missing key with 403
                    if _client_error_code(exc) not in {"403", "404", "NoSuchKey", "NotFound"}:
                        raise
                    self.s3.put_object(Bucket=bucket, Key=key, Body=data, ServerSideEncryption="AES256")
            except Exception as exc:
                raise translate(exc, f"uploading {artifact.path.name}") from exc
            keys[artifact.name] = key
        return keys

    def template_url(self, bucket: str, key: str) -> str:
        """The https URL CloudFormation reads a template from (the client's own endpoint
        when it has a custom one, as in tests)."""
        endpoint = str(self.s3.meta.endpoint_url)
        if "amazonaws.com" in endpoint:
            return f"https://{bucket}.s3.{self.region}.amazonaws.com/{key}"
        return f"{endpoint.rstrip('/')}/{bucket}/{key}"

    def empty_bucket(self, bucket: str) -> int:
        """Delete every object version and delete marker (before deleting a stack whose data
        bucket CloudFormation cannot remove while it holds anything). Returns how many."""
        removed = 0
        try:
            paginator = self.s3.get_paginator("list_object_versions")
            for page in paginator.paginate(Bucket=bucket):
                batch = [{"Key": v["Key"], "VersionId": v["VersionId"]}
                         for v in page.get("Versions", []) + page.get("DeleteMarkers", [])]
                for i in range(0, len(batch), 1000):
                    self.s3.delete_objects(Bucket=bucket, Delete={"Objects": batch[i:i + 1000], "Quiet": True})
                    removed += len(batch[i:i + 1000])
        except Exception as exc:
            if _client_error_code(exc) == "NoSuchBucket":
                return removed
            raise translate(exc, f"emptying {bucket}") from exc
        return removed

    # 4. review -----------------------------------------------------------------------

    def describe(self, stack_name: str) -> dict[str, Any] | None:
        """The stack, or None when there is none (or only a deleted one)."""
        try:
            stacks = self.cfn.describe_stacks(StackName=stack_name)["Stacks"]
        except Exception as exc:
            if "does not exist" in _client_error_message(exc):
                return None
            raise translate(exc, f"looking up stack {stack_name}") from exc
        if not stacks or stacks[0]["StackStatus"] == "DELETE_COMPLETE":
            return None
        return dict(stacks[0])

    def outputs(self, stack_name: str) -> dict[str, str]:
        """The stack's Outputs as {key: value}."""
        stack = self.describe(stack_name)
        if stack is None:
            raise DeployError(f"There is no stack named {stack_name} in {self.region}.", code="NoStack")
        return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}

    def create_change_set(self, stack_name: str, template_url: str, parameters: Mapping[str, str],
                          tags: Mapping[str, str] | None = None, timeout_s: float = 600) -> ChangeSetReview:
        """Create a change set and wait for it; a set with no changes is deleted and
        returned empty. Without change sets (moto) this only plans: rows are the template's
        resources for a create, and none are known for an update."""
        existing = self.describe(stack_name)
        if existing is not None and existing["StackStatus"] == "REVIEW_IN_PROGRESS":
            existing = None  # a change set left from a cancelled review: still a create
        change_type = "UPDATE" if existing else "CREATE"
        if existing and existing["StackStatus"] in {"ROLLBACK_COMPLETE", "ROLLBACK_FAILED"}:
            raise DeployError(f"Stack {stack_name} is in {existing['StackStatus']} after a failed create and "
                              "cannot be updated: delete it first.", code="NeedsDelete")
        if not self.use_change_sets:
            return ChangeSetReview(stack_name, "", change_type, [], existing["StackId"] if existing else "")
        name = f"tinyllama-{datetime.now(UTC):%Y%m%d%H%M%S}-{uuid.uuid4().hex[:6]}"
        try:
            created = self.cfn.create_change_set(
                StackName=stack_name, ChangeSetName=name, ChangeSetType=change_type,
                TemplateURL=template_url, Parameters=_parameters(parameters),
                Capabilities=["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"],
                Tags=[{"Key": k, "Value": v} for k, v in (tags or {}).items()])
        except Exception as exc:
            raise translate(exc, "creating the change set") from exc
        change_set_id, stack_id = created["Id"], created.get("StackId", "")
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                described = self.cfn.describe_change_set(ChangeSetName=change_set_id, StackName=stack_name)
            except Exception as exc:
                raise translate(exc, "reading the change set") from exc
            status = described["Status"]
            if status == "CREATE_COMPLETE":
                break
            if status == "FAILED":
                reason = described.get("StatusReason", "")
                if any(text in reason for text in NO_CHANGES):
                    self.discard_change_set(ChangeSetReview(stack_name, change_set_id, change_type, [], stack_id))
                    return ChangeSetReview(stack_name, "", change_type, [], stack_id)
                raise DeployError(f"The change set could not be created: {reason}", code="ChangeSetFailed")
            if time.monotonic() > deadline:
                raise DeployError("The change set was still being created after 10 minutes.", code="Timeout")
            self.wait(2.0)
        rows = _rows(described.get("Changes", []))
        token = described.get("NextToken")
        while token:
            page = self.cfn.describe_change_set(ChangeSetName=change_set_id, StackName=stack_name, NextToken=token)
            rows += _rows(page.get("Changes", []))
            token = page.get("NextToken")
        return ChangeSetReview(stack_name, change_set_id, change_type, rows, stack_id)

    def discard_change_set(self, review: ChangeSetReview) -> None:
        """Delete a reviewed change set that will not run (and the empty stack a CREATE one made)."""
        if not review.change_set_id:
            return
        try:
            self.cfn.delete_change_set(ChangeSetName=review.change_set_id, StackName=review.stack_name)
            if review.change_type == "CREATE":
                self.cfn.delete_stack(StackName=review.stack_id or review.stack_name)
        except Exception as exc:
            raise translate(exc, "discarding the change set") from exc

    def plan_delete(self, stack_name: str) -> ChangeSetReview:
        """The resources a delete removes, as Remove rows (the same review as a deploy)."""
        stack = self.describe(stack_name)
        if stack is None:
            raise DeployError(f"There is no stack named {stack_name} in {self.region}.", code="NoStack")
        rows: list[ChangeRow] = []
        try:
            for page in self.cfn.get_paginator("list_stack_resources").paginate(StackName=stack_name):
                for r in page.get("StackResourceSummaries", []):
                    if r.get("ResourceStatus") != "DELETE_COMPLETE":
                        rows.append(ChangeRow("Remove", r["LogicalResourceId"], r["ResourceType"]))
        except Exception as exc:
            raise translate(exc, "listing the stack's resources") from exc
        return ChangeSetReview(stack_name, "", "DELETE", rows, stack["StackId"])

    # 5. run and follow ---------------------------------------------------------------

    def newest_event_id(self, stack: str) -> str | None:
        """The id of the stack's newest event (None when it has none or does not exist): the
        line after which a new operation's events begin."""
        try:
            events = self.cfn.describe_stack_events(StackName=stack).get("StackEvents", [])
        except Exception as exc:
            if "does not exist" in _client_error_message(exc):
                return None
            raise translate(exc, f"reading the events of {stack}") from exc
        return str(events[0]["EventId"]) if events else None

    def execute(self, review: ChangeSetReview, template_url: str = "",
                parameters: Mapping[str, str] | None = None, tags: Mapping[str, str] | None = None) -> StackWatcher:
        """Run a reviewed change (change set, direct create/update, or delete); returns
        the watcher to follow it with.

        The operation is sent with a fresh ClientRequestToken (CloudFormation stamps it on
        every event the operation causes, and a retried call is not run twice), and the
        stack's newest event before it starts marks where its events begin.
        """
        stack = review.stack_id or review.stack_name
        request_token = _request_token(review.change_type)
        direct_create = review.change_type == "CREATE" and not review.change_set_id
        after = None if direct_create else self.newest_event_id(stack)
        try:
            if review.change_type == "DELETE":
                self.cfn.delete_stack(StackName=stack, ClientRequestToken=request_token)
            elif review.change_set_id:
                self.cfn.execute_change_set(ChangeSetName=review.change_set_id, StackName=review.stack_name,
                                            ClientRequestToken=request_token)
            else:
                kwargs = {"StackName": review.stack_name, "TemplateURL": template_url,
                          "Parameters": _parameters(parameters or {}),
                          "Capabilities": ["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"],
                          "Tags": [{"Key": k, "Value": v} for k, v in (tags or {}).items()],
                          "ClientRequestToken": request_token}
                if direct_create:
                    stack = self.cfn.create_stack(**kwargs)["StackId"]
                else:
                    try:
                        stack = self.cfn.update_stack(**kwargs)["StackId"]
                    except Exception as exc:
                        if any(text in _client_error_message(exc) for text in NO_CHANGES):
                            stack = review.stack_id or review.stack_name
                        else:
                            raise
        except Exception as exc:
            raise translate(exc, f"starting the {review.change_type.lower()} of {review.stack_name}") from exc
        expected = len(review.rows) or 1
        return StackWatcher(self.cfn, stack, after_event_id=after, expected=expected,
                            operation=review.change_type, token=request_token)

    def cancel(self, watcher: StackWatcher) -> str:
        """Stop a running operation: an update is cancelled (CloudFormation rolls it back);
        a create is deleted (nothing half-made is left). Returns what was done, in words."""
        status = watcher.status or self._status(watcher.stack)
        try:
            if status == "UPDATE_IN_PROGRESS":
                self.cfn.cancel_update_stack(StackName=watcher.stack, ClientRequestToken=_request_token("CANCEL"))
                return "Update cancelled; CloudFormation is rolling the stack back to how it was."
            if status in {"CREATE_IN_PROGRESS", "ROLLBACK_IN_PROGRESS", "CREATE_FAILED", "ROLLBACK_COMPLETE",
                          "REVIEW_IN_PROGRESS"}:
                self.cfn.delete_stack(StackName=watcher.stack, ClientRequestToken=_request_token("DELETE"))
                watcher.operation = "DELETE"
                return "Create cancelled; the stack and what it made so far are being deleted."
        except Exception as exc:
            raise translate(exc, "cancelling") from exc
        return f"Nothing to cancel: the stack is {status}."

    def _status(self, stack: str) -> str:
        return StackWatcher(self.cfn, stack)._stack_status()

    def follow(self, watcher: StackWatcher, on_update: Callable[[WatchUpdate], None] | None = None,
               interval_s: float = 5.0, should_stop: Callable[[], bool] = lambda: False) -> WatchUpdate:
        """Poll until the stack settles (the CLI's loop; the wizard polls on a QTimer)."""
        while True:
            update = watcher.poll()
            if on_update is not None:
                on_update(update)
            if update.done or should_stop():
                return update
            self.wait(interval_s)


def create_first_user(cognito: Any, user_pool_id: str, username: str, email: str, *,
                      invite_by_email: bool) -> str:
    """Cognito admin-create-user. Returns the temporary password to show once, or "" when
    Cognito e-mails an invitation instead."""
    attributes = [{"Name": "email", "Value": email}, {"Name": "email_verified", "Value": "true"}]
    kwargs: dict[str, Any] = {"UserPoolId": user_pool_id, "Username": username, "UserAttributes": attributes}
    password = ""
    if invite_by_email:
        kwargs["DesiredDeliveryMediums"] = ["EMAIL"]
    else:
        password = temporary_password()
        kwargs.update(TemporaryPassword=password, MessageAction="SUPPRESS")
    try:
        cognito.admin_create_user(**kwargs)
    except Exception as exc:
        if _client_error_code(exc) == "UsernameExistsException":
            raise DeployError(f"A user named {username} already exists in this pool.", code="UserExists") from exc
        raise translate(exc, f"creating the user {username}") from exc
    return password


def planned_adds(template_text: str) -> list[ChangeRow]:
    """A template's resources as Add rows: the review of a create without a change set."""
    import yaml

    class _Loader(yaml.SafeLoader):
        pass

    # CloudFormation's short forms (!Ref, !Sub, …) only need to parse, not resolve.
    _Loader.add_multi_constructor("!", lambda loader, suffix, node: None)
    try:
        body = yaml.load(template_text, Loader=_Loader)  # a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise DeployError(f"The template is not valid YAML: {exc}", code="Template") from exc
    resources = (body or {}).get("Resources", {}) if isinstance(body, dict) else {}
    return [ChangeRow("Add", name, str(r.get("Type", ""))) for name, r in resources.items() if isinstance(r, dict)]


def _request_token(operation: str) -> str:
    """A ClientRequestToken: unique per operation, readable in the console's Events tab
    (CloudFormation allows letters, digits and '-', up to 128 characters)."""
    return f"tinyllama-{operation.lower()}-{uuid.uuid4().hex}"


def _parameters(values: Mapping[str, str]) -> list[dict[str, str]]:
    return [{"ParameterKey": k, "ParameterValue": str(v)} for k, v in values.items()]


def _rows(changes: list[dict[str, Any]]) -> list[ChangeRow]:
    rows = []
    for change in changes:
        rc = change.get("ResourceChange", {})
        rows.append(ChangeRow(rc.get("Action", ""), rc.get("LogicalResourceId", ""), rc.get("ResourceType", ""),
                              rc.get("Replacement", "") if rc.get("Action") == "Modify" else "",
                              ", ".join(rc.get("Scope", []))))
    return rows


def _tls_only_policy(bucket: str) -> str:
    import json

    return json.dumps({"Version": "2012-10-17", "Statement": [{
        "Sid": "DenyInsecureTransport", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
        "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"],
        "Condition": {"Bool": {"aws:SecureTransport": "false"}}}]})
