"""`ComputeControl` for the GPU instance on EC2: describe, start, stop (or hibernate).

boto3 is imported only when a client has to be built, so importing this module costs
nothing on the router's cold start.

Behaviour worth knowing:

- start() on a `stopping` instance does not raise: EC2 cannot start an instance until it
  has stopped, so it returns "still stopping ..." and changes nothing. The router calls
  start() again on its next poll while a job waits, and that call starts it.
- On `InsufficientInstanceCapacity` the instance type is changed to the fallback (only in
  the stopped state, the one state in which EC2 allows it) and the start is retried once.
  If the fallback has no capacity either, the original type is put back and a
  ComputeError says so. The fallback type stays after a successful start; pass
  `preferred_instance_type` to have the next start from stopped switch back to it first.
- stop() hibernates only when EC2 says the type supports hibernation
  (`describe_instance_types` -> `HibernationSupported`, cached per type) and the instance
  was launched with `HibernationOptions.Configured`; otherwise it stops (GPU families G
  and P never hibernate). The returned text starts with "hibernated" or "stopped".
- AWS errors become `ComputeError`s written for a person: a missing IAM permission is
  named (e.g. `ec2:StartInstances`), capacity and quota problems say what to do.
"""

from __future__ import annotations

import contextlib
import logging
import re
from datetime import UTC, datetime
from typing import Any

from backend.core.errors import ComputeError
from backend.core.ports import MachineStatus

log = logging.getLogger("tinyllama.compute")

# EC2 state name -> MachineStatus.state
_STATES = {
    "pending": "pending",
    "running": "running",
    "stopping": "stopping",
    "shutting-down": "stopping",
    "stopped": "stopped",
    "terminated": "stopped",
}

_PERMISSION_CODES = {"UnauthorizedOperation", "AccessDenied", "AccessDeniedException"}
_CAPACITY = "InsufficientInstanceCapacity"
_QUOTA_CODES = {"VcpuLimitExceeded", "InstanceLimitExceeded"}
_NOT_FOUND_CODES = {"InvalidInstanceID.NotFound", "InvalidInstanceID.Malformed"}

# "User initiated (2019-08-09 15:48:31 GMT)" -- EC2 writes the time of the transition here.
_REASON_TIME = re.compile(r"\((\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}) (?:GMT|UTC)\)")


class Ec2ComputeError(ComputeError):
    """A ComputeError that remembers the EC2 error code and the API action behind it."""

    def __init__(self, message: str, *, aws_code: str, action: str, code: str | None = None):
        super().__init__(message, code=code)
        self.aws_code = aws_code
        self.action = action


def _reason_time(reason: str) -> float | None:
    match = _REASON_TIME.search(reason or "")
    if not match:
        return None
    parsed = datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
    return parsed.timestamp()


class Ec2Compute:
    """Start, stop and describe one EC2 instance (the GPU worker's)."""

    def __init__(
        self,
        instance_id: str,
        *,
        ec2_client: Any = None,
        fallback_instance_type: str | None = "g5.xlarge",
        region: str | None = None,
        preferred_instance_type: str | None = None,
        ledger: Any = None,
    ):
        self.instance_id = instance_id
        # The GPU ledger (backend.adapters.gpu_ledger.GpuLedger), when this one records
        # what the instance costs: every start, stop and observed state goes there.
        self.ledger = ledger
        self.fallback_instance_type = fallback_instance_type
        self.preferred_instance_type = preferred_instance_type
        self._region = region
        self._client = ec2_client
        self._hibernation_supported: dict[str, bool] = {}

    # -- plumbing -------------------------------------------------------------------------

    @property
    def client(self) -> Any:
        if self._client is None:
            import boto3  # lazily: keeps importing this module cheap

            from backend.adapters.aws_endpoints import client_config

            # Inside a 30 s API request: botocore's 60 s connect timeout with retries would
            # outlast it when the egress path is down, and the app would see a bare 503.
            # Dual-stack: the router's subnets reach EC2 over IPv6 only (aws_endpoints).
            config = client_config("ec2", connect_timeout=3, read_timeout=10,
                                   retries={"mode": "standard", "total_max_attempts": 2})
            self._client = boto3.client("ec2", region_name=self._region, config=config)
        return self._client

    def _region_name(self) -> str:
        return self._region or getattr(self.client.meta, "region_name", None) or "this region"

    def _call(self, method: str, **kwargs: Any) -> dict[str, Any]:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return getattr(self.client, method)(**kwargs)
        except ClientError as exc:
            raise self._translate(exc) from exc
        except BotoCoreError as exc:
            raise self._translate_botocore(exc) from exc

    def _translate(self, exc: Any) -> Ec2ComputeError:
        error = exc.response.get("Error", {})
        aws_code = error.get("Code", "Unknown")
        aws_message = error.get("Message", "")
        action = f"ec2:{exc.operation_name}"
        iid = self.instance_id
        if aws_code in _PERMISSION_CODES:
            return Ec2ComputeError(
                f"Not allowed to call {action} on instance {iid} ({aws_code}). Add the "
                f"{action} permission to the IAM policy of the role this runs as.",
                aws_code=aws_code,
                action=action,
                code="compute_permission_denied",
            )
        if aws_code == _CAPACITY:
            return Ec2ComputeError(
                f"AWS has no free capacity for this instance type in {self._region_name()} "
                "right now. Try again in a few minutes.",
                aws_code=aws_code,
                action=action,
            )
        if aws_code in _QUOTA_CODES:
            return Ec2ComputeError(
                f"Your account's EC2 quota does not allow starting instance {iid} "
                f"({aws_code}: {aws_message}). Request a higher vCPU quota for this "
                "instance family in the Service Quotas console.",
                aws_code=aws_code,
                action=action,
            )
        if aws_code in _NOT_FOUND_CODES:
            return Ec2ComputeError(
                f"EC2 instance {iid} does not exist in {self._region_name()}. Check the "
                "instance id the stack outputs and the region.",
                aws_code=aws_code,
                action=action,
                code="compute_not_found",
            )
        return Ec2ComputeError(
            f"EC2 refused {action} for instance {iid}: {aws_message or aws_code} ({aws_code}).",
            aws_code=aws_code,
            action=action,
        )

    def _translate_botocore(self, exc: Exception) -> ComputeError:
        from botocore.exceptions import EndpointConnectionError, NoCredentialsError

        if isinstance(exc, NoCredentialsError):
            return ComputeError(
                "No AWS credentials were found, so the GPU instance cannot be controlled. "
                "Sign in to AWS (or give the router its role) and try again."
            )
        if isinstance(exc, EndpointConnectionError):
            return ComputeError(
                f"Could not reach EC2 in {self._region_name()}. Check the network connection and try again."
            )
        return ComputeError(f"Talking to EC2 failed: {exc}")

    def _instance(self) -> dict[str, Any]:
        answer = self._call("describe_instances", InstanceIds=[self.instance_id])
        for reservation in answer.get("Reservations", []):
            for instance in reservation.get("Instances", []):
                if instance.get("InstanceId") == self.instance_id:
                    return instance
        raise ComputeError(
            f"EC2 instance {self.instance_id} does not exist in {self._region_name()}. "
            "Check the instance id the stack outputs and the region.",
            code="compute_not_found",
        )

    def hibernation_supported(self, instance_type: str) -> bool:
        """Whether EC2 says this instance type can hibernate (asked once per type)."""
        if instance_type not in self._hibernation_supported:
            answer = self._call("describe_instance_types", InstanceTypes=[instance_type])
            types = answer.get("InstanceTypes", [])
            supported = bool(types and types[0].get("HibernationSupported", False))
            self._hibernation_supported[instance_type] = supported
        return self._hibernation_supported[instance_type]

    def _record(self, what: str, *args: Any, **kwargs: Any) -> None:
        """Tell the ledger; a ledger that cannot be written (Redis away) must never keep a
        GPU from starting or stopping, and the next describe() brings it up to date."""
        if self.ledger is None:
            return
        try:
            getattr(self.ledger, what)(*args, **kwargs)
        except Exception as exc:
            log.warning("GPU ledger not updated (%s): %s", what, exc)

    # -- ComputeControl -------------------------------------------------------------------

    def describe(self) -> MachineStatus:
        instance = self._instance()
        ec2_state = instance["State"]["Name"]
        state = _STATES.get(ec2_state, "stopping")
        reason = instance.get("StateTransitionReason") or ""
        if state in ("pending", "running"):
            launched = instance.get("LaunchTime")
            since = launched.timestamp() if isinstance(launched, datetime) else None
            placement = instance.get("Placement", {}).get("AvailabilityZone")
            detail = f"{ec2_state} in {placement}" if placement else ec2_state
        else:
            since = _reason_time(reason)
            why = instance.get("StateReason", {}).get("Message") or reason
            detail = f"{ec2_state}: {why}" if why else ec2_state
        launched = instance.get("LaunchTime")
        # EC2 resets LaunchTime at every start, and writes the stop's time into the reason.
        self._record("observe", state, instance.get("InstanceType"),
                     launched_at=launched.timestamp() if isinstance(launched, datetime) else None,
                     stopped_at=since if state == "stopped" else None)
        return MachineStatus(
            state=state,
            instance_type=instance.get("InstanceType"),
            since=since,
            detail=detail,
        )

    def start(self) -> str:
        instance = self._instance()
        ec2_state = instance["State"]["Name"]
        itype = instance.get("InstanceType", "?")
        if ec2_state == "running":
            return f"already running ({itype})"
        if ec2_state == "pending":
            return f"already starting ({itype})"
        if ec2_state == "stopping":
            return f"still stopping ({itype}); EC2 cannot start it until it has stopped, so ask again in a few seconds"
        if ec2_state in ("shutting-down", "terminated"):
            raise ComputeError(
                f"EC2 instance {self.instance_id} was terminated and cannot be started. "
                "Deploy the stack again to get a new GPU instance.",
                code="compute_not_found",
            )

        preferred = self.preferred_instance_type
        if preferred and itype != preferred:
            self._set_type(preferred)
            itype = preferred

        try:
            self._call("start_instances", InstanceIds=[self.instance_id])
            self._record("started", itype)
            return f"starting ({itype})"
        except Ec2ComputeError as exc:
            fallback = self.fallback_instance_type
            if exc.aws_code != _CAPACITY:
                raise
            if not fallback or fallback == itype:
                raise ComputeError(
                    f"AWS has no free capacity for {itype} in {self._region_name()} right "
                    "now. Try again in a few minutes."
                ) from exc
            first_error = exc

        self._set_type(fallback)
        try:
            self._call("start_instances", InstanceIds=[self.instance_id])
        except Ec2ComputeError as exc:
            if exc.aws_code != _CAPACITY:
                raise
            with contextlib.suppress(ComputeError):  # best effort: the capacity error matters more
                self._set_type(itype)  # so the next wake tries the first type again
            raise ComputeError(
                f"AWS has no free capacity for {itype} nor {fallback} in "
                f"{self._region_name()} right now. Try again in a few minutes."
            ) from first_error
        self._record("started", fallback)  # billed at the fallback's own price
        return f"starting ({fallback}): no {itype} capacity, so the instance fell back to {fallback}"

    def _set_type(self, instance_type: str) -> None:
        self._call(
            "modify_instance_attribute",
            InstanceId=self.instance_id,
            InstanceType={"Value": instance_type},
        )

    def stop(self) -> str:
        instance = self._instance()
        ec2_state = instance["State"]["Name"]
        itype = instance.get("InstanceType", "?")
        if ec2_state in ("stopped", "terminated"):
            return f"already {ec2_state} ({itype})"
        if ec2_state in ("stopping", "shutting-down"):
            return f"already stopping ({itype})"

        configured = bool(instance.get("HibernationOptions", {}).get("Configured", False))
        if not configured:
            why = "launched without hibernation configured"
        else:
            try:
                supported = self.hibernation_supported(itype)
            except Ec2ComputeError as exc:
                # Stopping is always safe; not knowing whether hibernation works is no
                # reason to leave a GPU running.
                supported = False
                why = f"could not check whether {itype} can hibernate: {exc.message}"
            else:
                why = f"{itype} cannot hibernate"
            if supported:
                try:
                    self._call("stop_instances", InstanceIds=[self.instance_id], Hibernate=True)
                    self._record("stopped")
                    return (
                        f"hibernated ({itype}): memory saved to the root volume, so the model is still loaded on wake"
                    )
                except Ec2ComputeError as exc:
                    if exc.aws_code in _PERMISSION_CODES:
                        raise
                    why = f"EC2 refused to hibernate it: {exc.message}"

        self._call("stop_instances", InstanceIds=[self.instance_id])
        self._record("stopped")
        return f"stopped ({itype}; {why}): the volume is kept, the model stays on disk"
