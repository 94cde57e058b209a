"""Lift the budget's deny-wake policy from the router's role.

At the hard cap the stack's budget action attaches `DenyWakePolicy` to the router's role
(`APPLY_IAM_POLICY`), so no prompt can start the GPU even before the router's own ledger
sees the figure. Nothing takes it off again by itself, so two things call this:

- a schedule at 00:00 UTC on the 1st of each month (the budget's new period), and
- the stack's delete, through a custom resource: CloudFormation cannot delete a role with
  a managed policy attached that it did not attach itself, nor a managed policy that is
  still attached (IAM's DeleteRole and DeletePolicy answer DeleteConflict).

IAM is reached at its dual-stack endpoint, https://iam.global.api.aws (IAM user guide,
"Dual-stack endpoint support"), so the router's IPv6-only way out is enough; botocore
picks it with `use_dualstack_endpoint`. boto3 is imported only here.
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger("tinyllama.budget")


def iam_client() -> Any:
    """An IAM client on the dual-stack endpoint that gives up in seconds."""
    import boto3
    from botocore.config import Config

    config = Config(use_dualstack_endpoint=True, connect_timeout=3, read_timeout=10,
                    retries={"mode": "standard", "total_max_attempts": 3})
    return boto3.client("iam", config=config)


def lift_deny_wake(role_name: str, policy_arn: str, client: Any = None) -> str:
    """Detach `policy_arn` from `role_name`; say what happened. Not attached is no error:
    most months the cap was never reached."""
    client = client or iam_client()
    try:
        client.detach_role_policy(RoleName=role_name, PolicyArn=policy_arn)
    except client.exceptions.NoSuchEntityException:
        log.info("deny-wake policy was not attached to %s", role_name)
        return "not attached"
    log.info("deny-wake policy detached from %s: the GPU may wake again", role_name)
    return "detached"
