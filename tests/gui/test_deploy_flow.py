"""`tinyllama deploy` and the wizard run one deploy flow (desktop/services/deploy/flow.py).

Each test gives both front ends the same inputs and checks that they do the same: the
parameters merged by one rule (the stack's current values ← options/profile ← explicit ←
uploaded keys), the template's resources listed as planned adds when a direct create has
no change set rows, and "no changes" ending the run. Identity and uploads go to moto's
server; CloudFormation is a botocore Stubber where moto's change sets fall short
(DESIGN.md), with a hook that records what each front end sent.
"""

from __future__ import annotations

import argparse
import io
import logging
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from desktop import deploy_cli
from desktop.core.deploy_options import DeployOptions
from desktop.core.settings import Settings
from desktop.qt.runner import Runner
from desktop.services.artifacts import INSTALL_SCRIPT, Builders
from desktop.services.deploy import flow
from desktop.services.deploy.changes import ChangeSetReview
from desktop.services.deploy.stack import StackDeployer
from desktop.views.wizard import DeployWizard, WizardContext
from desktop.views.wizard.context import UNEXPECTED
from desktop.views.wizard.wizard import DEPLOY, REVIEW, UPLOAD
from tests.fixtures import cfn_events as ev

TEMPLATE = """\
AWSTemplateFormatVersion: '2010-09-09'
Parameters:
  InstanceType: {Type: String}
  RootVolumeGiB: {Type: Number}
  RedisMode: {Type: String}
  EgressMode: {Type: String}
  CreateDashboard: {Type: String}
  EnableBudgetAction: {Type: String}
  WarningUsd: {Type: Number}
  HardCapUsd: {Type: Number}
  AlertEmail: {Type: String}
  Model: {Type: String}
  CodeS3Bucket: {Type: String}
  RouterZipKey: {Type: String}
  WorkerWheelKey: {Type: String}
  WorkerInstallKey: {Type: String}
  Suffix: {Type: String, Default: one}
Resources:
  DataBucket:
    Type: AWS::S3::Bucket
  Setting:
    Type: AWS::SSM::Parameter
    Properties: {Type: String, Value: !Ref Suffix}
Outputs:
  DataBucket: {Value: !Ref DataBucket}
"""
OPTIONS = DeployOptions(template="stack", instance_type="g5.xlarge", alert_email="ada@example.com")
# The stack as it is: a value the options do not know (Suffix, set by an earlier
# `tinyllama deploy -p`), one the options change (InstanceType), and one the template no
# longer declares (Retired), which CloudFormation would refuse.
CURRENT = {"InstanceType": "g4dn.xlarge", "Suffix": "two", "Retired": "x", "AlertEmail": "old@example.com"}


@dataclass
class Files:
    template: Path
    router_zip: Path
    wheel: Path
    builders: Builders = field(init=False)

    def __post_init__(self) -> None:
        zip_path, wheel = self.router_zip, self.wheel
        self.builders = Builders(router_zip=lambda _dir: zip_path, worker_wheel=lambda _dir: wheel,
                                 install_script=INSTALL_SCRIPT, templates={"stack": self.template})


@pytest.fixture
def files(tmp_path: Path) -> Files:
    template = tmp_path / "stack.yaml"
    template.write_text(TEMPLATE)
    router_zip = tmp_path / "router.zip"
    with zipfile.ZipFile(router_zip, "w") as archive:
        archive.writestr("backend/__init__.py", "")
    wheel = tmp_path / "tinyllama-0.1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("tinyllama-0.1.0.dist-info/METADATA", "Name: tinyllama\n")
    return Files(template, router_zip, wheel)


@pytest.fixture
def endpoint(aws_env: str, monkeypatch: pytest.MonkeyPatch) -> str:
    url = aws_env.replace("127.0.0.1", "localhost")  # moto reads a TemplateURL on localhost path-style
    monkeypatch.setenv("AWS_ENDPOINT_URL", url)
    return url


@pytest.fixture
def stubbed_cfn() -> Iterator[tuple[Any, Stubber, list[dict[str, Any]]]]:
    """A Stubber'd CloudFormation client and the Parameters of every create_change_set sent."""
    cfn = boto3.client("cloudformation", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    sent: list[dict[str, Any]] = []

    def record(params: dict[str, Any], **_kwargs: Any) -> None:
        sent.append({p["ParameterKey"]: p["ParameterValue"] for p in params["Parameters"]})

    cfn.meta.events.register("provide-client-params.cloudformation.CreateChangeSet", record)
    with Stubber(cfn) as stubber:
        yield cfn, stubber, sent
        stubber.assert_no_pending_responses()


def deployer(endpoint: str, cfn: Any = None, *, change_sets: bool = True) -> StackDeployer:
    def client(name: str) -> Any:
        return boto3.client(name, region_name="us-east-1", endpoint_url=endpoint)

    return StackDeployer(cfn or client("cloudformation"), client("s3"), client("sts"), region="us-east-1",
                         use_change_sets=change_sets, wait=lambda _s: None, waiter_delay_s=0)


def cli_args(files: Files, stack: str, *extra: str) -> argparse.Namespace:
    explicit = [a for k, v in OPTIONS.parameters().items() for a in ("-p", f"{k}={v}")]
    return deploy_cli.add_parser(argparse.ArgumentParser().add_subparsers()).parse_args(
        ["--stack-name", stack, "--template", "stack", "--template-file", str(files.template),
         "--router-zip", str(files.router_zip), "--worker-wheel", str(files.wheel), *explicit, *extra])


def existing_stack(stubber: Stubber, times: int) -> None:
    stack = {**ev.stack_description("UPDATE_COMPLETE"),
             "Parameters": [{"ParameterKey": k, "ParameterValue": v} for k, v in CURRENT.items()]}
    for _ in range(times):
        stubber.add_response("describe_stacks", {"Stacks": [stack]})


def change_set_with_rows(stubber: Stubber) -> None:
    stubber.add_response("create_change_set", {"Id": "arn:cs/1", "StackId": ev.STACK_ID})
    for _ in range(2):  # the waiter's answer, then the paginator's page
        stubber.add_response("describe_change_set", {"Status": "CREATE_COMPLETE", "Changes": ev.CHANGES[:2]})
    stubber.add_response("delete_change_set", {}, {"ChangeSetName": "arn:cs/1", "StackName": ev.STACK})


def open_wizard(qtbot: Any, ctx: WizardContext, start: int) -> DeployWizard:
    wizard = DeployWizard(ctx, profiles=[])
    ctx.options = OPTIONS  # after the Options page's form, which fills in its own defaults when built
    wizard.setStartId(start)
    qtbot.addWidget(wizard)
    wizard.show()
    qtbot.waitExposed(wizard)
    return wizard


def wizard_context(paths: Any, runner: Runner, files: Files, d: StackDeployer, stack: str) -> WizardContext:
    """What the Account and Options pages leave behind: the checked account (by the flow's
    own check, as the Account page does it) and the chosen options."""
    ctx = WizardContext(Settings(paths.settings_file), runner, builders=files.builders, poll_interval_ms=0)
    found = flow.check(d, stack)
    ctx.deployer, ctx.identity, ctx.region, ctx.stack_name = d, found.identity, "us-east-1", stack
    ctx.existing_status, ctx.existing_parameters = found.status, found.parameters
    return ctx


def test_cli_and_wizard_merge_parameters_by_one_rule(qtbot: Any, paths: Any, endpoint: str, files: Files,
                                                       stubbed_cfn: tuple[Any, Stubber, list[dict[str, Any]]],
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    cfn, stubber, sent = stubbed_cfn
    existing_stack(stubber, 2)  # the flow's check, then the change set's create-or-update
    change_set_with_rows(stubber)
    assert deploy_cli.run(cli_args(files, ev.STACK), stdin=io.StringIO("n\n"),
                          deployer_factory=lambda **_kw: deployer(endpoint, cfn)) == 3
    assert "Nothing was changed." in capsys.readouterr().out

    existing_stack(stubber, 2)
    change_set_with_rows(stubber)
    runner = Runner()
    wizard = open_wizard(qtbot, wizard_context(paths, runner, files, deployer(endpoint, cfn), ev.STACK), UPLOAD)
    qtbot.waitUntil(wizard.upload_page.isComplete, timeout=15000)
    wizard.next()
    assert wizard.currentId() == REVIEW
    qtbot.waitUntil(wizard.review_page.isComplete, timeout=10000)
    wizard.reject()  # closing at the review discards the change set
    assert runner.shutdown(20000)

    cli, wiz = sent
    assert cli == wiz
    assert wiz["Suffix"] == "two"  # kept from the stack: the options do not know it
    assert "Retired" not in wiz  # the template no longer declares it
    assert wiz["InstanceType"] == "g5.xlarge" and wiz["AlertEmail"] == "ada@example.com"  # chosen beats current
    assert wiz["RouterZipKey"].endswith("/router.zip") and wiz["WorkerWheelKey"].endswith(files.wheel.name)


def test_cli_and_wizard_both_review_a_direct_create_as_planned_adds(
        qtbot: Any, paths: Any, endpoint: str, files: Files, capsys: pytest.CaptureFixture[str]) -> None:
    """Without change sets (moto's are broken) a create still shows what it will make."""
    stack = "tl-planned"
    assert deploy_cli.run(cli_args(files, stack, "--direct"), stdin=io.StringIO("n\n"),
                          deployer_factory=lambda **_kw: deployer(endpoint, change_sets=False)) == 3
    lines = capsys.readouterr().out.splitlines()
    cli_rows = [line.split()[:3] for line in lines if line.startswith("  Add ")]

    runner = Runner()
    d = deployer(endpoint, change_sets=False)
    ctx = wizard_context(paths, runner, files, d, stack)
    assert ctx.identity is not None
    ctx.uploaded = flow.build_and_upload(d, ctx.identity.account, "stack", ctx.workdir, files.builders)
    wizard = open_wizard(qtbot, ctx, REVIEW)
    qtbot.waitUntil(wizard.review_page.isComplete, timeout=10000)
    table = wizard.review_page.table
    wizard_rows = [[table.item(r, c).text() for c in range(3)] for r in range(table.rowCount())]
    wizard.reject()
    assert runner.shutdown(20000)

    assert cli_rows == wizard_rows == [["Add", "DataBucket", "AWS::S3::Bucket"],
                                       ["Add", "Setting", "AWS::SSM::Parameter"]]
    summaries = boto3.client("cloudformation", region_name="us-east-1").list_stacks()["StackSummaries"]
    assert all(s["StackName"] != stack for s in summaries)  # declined, and the review created nothing


def test_cli_ends_on_a_change_set_without_changes(endpoint: str, files: Files,
                                                  stubbed_cfn: tuple[Any, Stubber, list[dict[str, Any]]],
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """Nothing to change: no question, no direct update behind the person's back."""
    cfn, stubber, _sent = stubbed_cfn
    existing_stack(stubber, 2)
    stubber.add_response("create_change_set", {"Id": "arn:cs/2", "StackId": ev.STACK_ID})
    stubber.add_response("describe_change_set", {
        "Status": "FAILED", "StatusReason": "The submitted information didn't contain changes. Submit different "
        "information to create a change set."})
    stubber.add_response("delete_change_set", {}, {"ChangeSetName": "arn:cs/2", "StackName": ev.STACK})
    code = deploy_cli.run(cli_args(files, ev.STACK), stdin=io.StringIO(""),
                          deployer_factory=lambda **_kw: deployer(endpoint, cfn))
    out = capsys.readouterr().out
    assert code == 0 and "No changes: the stack already matches." in out and "[y/N]" not in out


def test_a_bug_reaches_the_log_with_its_traceback_and_the_person_reads_a_sentence(
        qtbot: Any, paths: Any, endpoint: str, files: Files, caplog: pytest.LogCaptureFixture) -> None:
    def broken_builder(_workdir: Path) -> Path:
        raise KeyError("router")  # a fault in our code, not an AWS answer

    files.builders.router_zip = broken_builder
    runner = Runner()
    ctx = wizard_context(paths, runner, files, deployer(endpoint, change_sets=False), "tl-bug")
    with caplog.at_level(logging.ERROR, logger="tinyllama.desktop"):
        wizard = open_wizard(qtbot, ctx, UPLOAD)
        qtbot.waitUntil(lambda: wizard.upload_page.retry.isVisible(), timeout=15000)
        assert runner.shutdown(20000)
    assert wizard.upload_page.status.text() == UNEXPECTED
    assert "KeyError" not in wizard.upload_page.status.text()
    record = next(r for r in caplog.records if r.name == "tinyllama.desktop" and r.exc_info)
    assert record.exc_info is not None and record.exc_info[0] is KeyError
    assert "broken_builder" in caplog.text  # the traceback, down to the failing function


def test_a_bug_while_following_ends_the_page_with_a_sentence_not_endless_retries(
        qtbot: Any, paths: Any, stubbed_cfn: tuple[Any, Stubber, list[dict[str, Any]]],
        caplog: pytest.LogCaptureFixture) -> None:
    """A network blip is retried; a fault in our code would fail the same way forever."""
    cfn, stubber, _sent = stubbed_cfn
    calls = {"events": 0}

    def bug_on_the_first_poll(**_kwargs: Any) -> None:
        calls["events"] += 1
        if calls["events"] == 2:  # the first is execute's look for the newest event
            raise ZeroDivisionError("a fault in our own code")

    cfn.meta.events.register("provide-client-params.cloudformation.DescribeStackEvents", bug_on_the_first_poll)
    stubber.add_client_error("describe_stack_events", "ValidationError", "Stack [tinyllama] does not exist")
    stubber.add_response("execute_change_set", {})
    runner = Runner()
    ctx = WizardContext(Settings(paths.settings_file), runner, poll_interval_ms=0)
    ctx.deployer = StackDeployer(cfn, region="us-east-1", wait=lambda _s: None)
    ctx.stack_name = ev.STACK
    ctx.review = ChangeSetReview(ev.STACK, "arn:cs/1", "CREATE", [], ev.STACK_ID)
    with caplog.at_level(logging.ERROR, logger="tinyllama.desktop"):
        wizard = open_wizard(qtbot, ctx, DEPLOY)
        page = wizard.deploy_page
        qtbot.waitUntil(lambda: page.outcome.isVisible(), timeout=10000)
        assert runner.shutdown(20000)
    assert UNEXPECTED in page.outcome.text() and "CloudFormation console" in page.outcome.text()
    assert calls["events"] == 2 and not page.timer.isActive()  # no further polls
    assert any(r.exc_info and r.exc_info[0] is ZeroDivisionError for r in caplog.records)


def test_cli_says_when_the_template_file_is_missing(endpoint: str, files: Files, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    files.template = tmp_path / "typo.yaml"
    code = deploy_cli.run(cli_args(files, "tl-typo", "--direct"), stdin=io.StringIO(""),
                          deployer_factory=lambda **_kw: deployer(endpoint, change_sets=False))
    assert code == 2 and f"there is no template file {files.template}" in capsys.readouterr().out
