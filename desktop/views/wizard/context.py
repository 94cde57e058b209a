"""What the wizard's pages share: the services they call and what earlier pages found.

Plain data; the pages read and fill it in order (Account → Options → Upload → Review →
Deploy → Done). Factories are injected so tests can point everything at moto or a Stubber.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from desktop.core.deploy_options import DeployOptions
from desktop.core.errors import AppError
from desktop.core.settings import Settings
from desktop.qt.runner import Runner
from desktop.services.artifacts import Builders, Uploaded
from desktop.services.deploy import flow
from desktop.services.deploy.changes import ChangeSetReview
from desktop.services.deploy.events import StackWatcher, WatchUpdate
from desktop.services.deploy.stack import Identity, StackDeployer

UNEXPECTED = ("Something unexpected went wrong: a fault in TinyLlama, not in your account or your choices. "
              "Its details are in the log (Help → Open log folder); close the wizard and try again.")


def in_words(exc: BaseException) -> str:
    """What a page shows for a failed step: an AppError's own words (AWS's failures are
    translated into those); anything else is a bug, whose traceback the runner logged."""
    return str(exc) if isinstance(exc, AppError) else UNEXPECTED


def make_session(profile: str = "", access_key: str = "", secret_key: str = "", session_token: str = "",
                 region: str = "") -> Any:
    """A boto3 Session from a named profile or typed keys (typed keys stay in memory only)."""
    import boto3

    if access_key:
        return boto3.session.Session(aws_access_key_id=access_key, aws_secret_access_key=secret_key,
                                     aws_session_token=session_token or None, region_name=region or None)
    return boto3.session.Session(profile_name=profile or None, region_name=region or None)


def default_deployer(session: Any, region: str) -> StackDeployer:
    """The deployer for the account and region the Account page checked."""
    return StackDeployer(session=session, region=region)


@dataclass
class WizardContext:
    """Services (injected) and the run's findings (filled in by the pages)."""

    settings: Settings
    runner: Runner
    deployer_factory: Callable[[Any, str], StackDeployer] = default_deployer
    cognito_factory: Callable[[Any, str], Any] = lambda session, region: session.client(
        "cognito-idp", region_name=region)
    builders: Builders = field(default_factory=Builders)
    poll_interval_ms: int = 5000
    # found along the way
    session: Any = None
    profile: str = ""
    region: str = ""
    deployer: StackDeployer | None = None
    identity: Identity | None = None
    stack_name: str = "tinyllama"
    existing_status: str = ""  # "" when there is no such stack
    existing_parameters: dict[str, str] = field(default_factory=dict)  # the stack's, to start an update from
    action: str = "deploy"  # or "delete"
    options: DeployOptions = field(default_factory=DeployOptions)
    uploaded: Uploaded | None = None
    review: ChangeSetReview | None = None
    empty_data_bucket: bool = False
    data_bucket: str = ""
    watcher: StackWatcher | None = None
    final: WatchUpdate | None = None
    outputs: dict[str, str] = field(default_factory=dict)
    _workdir: tempfile.TemporaryDirectory[str] | None = None

    @property
    def workdir(self) -> Path:
        if self._workdir is None:
            self._workdir = tempfile.TemporaryDirectory(prefix="tinyllama-deploy-")
        return Path(self._workdir.name)

    def close(self) -> None:
        if self._workdir is not None:
            self._workdir.cleanup()
            self._workdir = None

    @property
    def tags(self) -> dict[str, str]:
        return flow.tags_for(self.stack_name)
