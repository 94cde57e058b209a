"""The deploy steps, in order, written once: the wizard's pages and `tinyllama deploy` both
call these and nothing else, so the two cannot drift apart.

1. `check()` — who the credentials are, and the stack as it stands (status, parameters).
2. `merge_parameters()` — the one rule: the stack's current values ← the profile/options
   ← explicit values ← the uploaded artifacts' keys.
3. `build_and_upload()` — the files the template needs, into the bootstrap bucket.
4. `review()` — a change set's rows, or the direct plan (with the template's resources as
   planned adds for a create, where there are no change set rows).
5. `start()` — run the reviewed change (a delete may empty the data bucket first); the
   returned StackWatcher follows its events. `outputs()` once it settled.
Deleting is `check()`, `plan_delete()`, `start()`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from desktop.services import artifacts
from desktop.services.artifacts import Builders, Uploaded
from desktop.services.deploy.changes import ChangeSetReview, planned_adds, template_parameters
from desktop.services.deploy.events import StackWatcher
from desktop.services.deploy.stack import Identity, StackDeployer


@dataclass(frozen=True)
class Found:
    """What step 1 learned: the identity, and the stack as it is ("" status: none yet)."""

    identity: Identity
    status: str = ""
    parameters: dict[str, str] = field(default_factory=dict)


def check(deployer: StackDeployer, stack_name: str) -> Found:
    """Identity (STS), then the stack and its current parameter values."""
    identity = deployer.check_identity()
    existing = deployer.describe(stack_name) or {}
    current = {p["ParameterKey"]: str(p.get("ParameterValue", "")) for p in existing.get("Parameters", [])}
    return Found(identity, str(existing.get("StackStatus", "")), current)


def tags_for(stack_name: str) -> dict[str, str]:
    """The tags every deployment puts on its stack (and CloudFormation on its resources)."""
    return {"app": "tinyllama", "stack": stack_name}


def merge_parameters(current: Mapping[str, str] | None = None, chosen: Mapping[str, str] | None = None,
                     explicit: Mapping[str, str] | None = None, uploaded: Mapping[str, str] | None = None,
                     declared: set[str] | None = None) -> dict[str, str]:
    """The stack's current values ← the profile/options ← explicit values ← the uploaded keys.

    An update starts from what the stack has, so only what is given changes (a parameter
    the options do not know is kept, not reset to the template's default). With the
    template's parameter names (`declared`), current values it no longer declares are
    dropped: CloudFormation refuses parameters a template lacks.
    """
    kept = {k: v for k, v in (current or {}).items() if declared is None or k in declared}
    return {**kept, **(chosen or {}), **(explicit or {}), **(uploaded or {})}


def parameters_for(template_text: str, current: Mapping[str, str] | None = None,
                   chosen: Mapping[str, str] | None = None, explicit: Mapping[str, str] | None = None,
                   uploaded: Mapping[str, str] | None = None) -> dict[str, str]:
    """`merge_parameters` for this template (current values it does not declare are dropped)."""
    return merge_parameters(current, chosen, explicit, uploaded, declared=template_parameters(template_text))


def build_and_upload(deployer: StackDeployer, account: str, template: str, workdir: Path,
                     builders: Builders | None = None,
                     progress: Callable[[str], None] = lambda _text: None) -> Uploaded:
    """Build what `template` needs in `workdir`, then upload it to the bootstrap bucket."""
    files = artifacts.build(template, workdir, builders, progress)
    return artifacts.upload(deployer, account, template, files, progress)


def review(deployer: StackDeployer, stack_name: str, template_text: str, uploaded: Uploaded, *,
           current: Mapping[str, str] | None = None, chosen: Mapping[str, str] | None = None,
           explicit: Mapping[str, str] | None = None) -> ChangeSetReview:
    """What the deploy will change, with the merged parameters it will send.

    A create without change set rows (change sets off, as on moto) lists the template's
    resources as planned adds, so the person sees what will be made before it is.
    """
    parameters = parameters_for(template_text, current, chosen, explicit, uploaded.parameters)
    result = deployer.create_change_set(stack_name, uploaded.template_url, parameters, tags_for(stack_name))
    if not result.change_set_id and result.change_type == "CREATE" and not result.rows:
        return replace(result, rows=planned_adds(template_text))
    return result


def plan_delete(deployer: StackDeployer, stack_name: str) -> tuple[ChangeSetReview, str]:
    """What a delete removes, and the data bucket ("" if none) that must be empty first."""
    return deployer.plan_delete(stack_name), deployer.outputs(stack_name).get("DataBucket", "")


def start(deployer: StackDeployer, reviewed: ChangeSetReview, empty_bucket: str = "") -> StackWatcher:
    """Run what was reviewed; for a delete, `empty_bucket` is emptied first (its data is lost)."""
    if empty_bucket and reviewed.change_type == "DELETE":
        deployer.empty_bucket(empty_bucket)
    return deployer.execute(reviewed)


def discard(deployer: StackDeployer, reviewed: ChangeSetReview) -> None:
    """A review that will not run: its change set (and a create's empty stack) goes."""
    deployer.discard_change_set(reviewed)


def outputs(deployer: StackDeployer, stack_name: str) -> dict[str, str]:
    """The settled stack's outputs."""
    return deployer.outputs(stack_name)
