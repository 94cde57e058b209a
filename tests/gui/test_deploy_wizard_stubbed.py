"""The wizard's Review and Deploy pages on a botocore Stubber fed realistic event sequences.

moto's change sets are broken and its CloudFormation emits only stack-level events and no
failures (DESIGN.md), so the change-set table, the live progress, a failed create followed
through its rollback, and a cancelled update are driven by tests/fixtures/cfn_events.py.
The wizard starts at Review with what Account and Upload would have found (those pages
are tested against moto in test_deploy_wizard.py). Polls are stepped by the test: the
poll interval is an hour, and the test fires the page's timer when it wants the next one.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import boto3
import pytest
from botocore.stub import ANY, Stubber
from PySide6.QtWidgets import QWizard

from desktop.core.settings import Settings
from desktop.qt.runner import Runner
from desktop.services.artifacts import Uploaded
from desktop.services.deploy.stack import Identity, StackDeployer
from desktop.views.wizard import DeployWizard, WizardContext
from desktop.views.wizard.wizard import DEPLOY, REVIEW
from tests.fixtures import cfn_events as ev
from tests.gui.conftest import save_screenshot

URL = "https://tinyllama-bootstrap-123456789012-us-east-1.s3.us-east-1.amazonaws.com/tinyllama/abc/stack.yaml"
HOUR_MS = 3_600_000
# The review's own event (a change set's CREATE starts as REVIEW_IN_PROGRESS), stamped an hour
# after the operation's: AWS's timestamps never decide which events are shown.
EARLIER = ev.history_of([([(ev.STACK, "AWS::CloudFormation::Stack", "REVIEW_IN_PROGRESS", "User Initiated")],
                          "REVIEW_IN_PROGRESS")], t0=ev.T0 + timedelta(hours=1))


@pytest.fixture
def stubbed(qtbot: Any, paths: Any) -> Iterator[tuple[Any, Stubber]]:
    """(start, stubber): queue the answers on the stubber, then `start()` opens the wizard
    at Review (which asks CloudFormation at once)."""
    cfn = boto3.client("cloudformation", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    runner = Runner()
    with Stubber(cfn) as stubber:
        ctx = WizardContext(Settings(paths.settings_file), runner, poll_interval_ms=HOUR_MS)
        ctx.deployer = StackDeployer(cfn, region="us-east-1", wait=lambda _s: None)
        ctx.identity = Identity("123456789012", "arn:aws:iam::123456789012:user/ada", "AIDA", "us-east-1")
        ctx.region, ctx.stack_name = "us-east-1", ev.STACK
        ctx.uploaded = Uploaded("tinyllama-bootstrap-123456789012-us-east-1", URL, {"CodeS3Bucket": "b"})

        def start() -> DeployWizard:
            wizard = DeployWizard(ctx, profiles=[])
            wizard.setStartId(REVIEW)
            qtbot.addWidget(wizard)
            wizard.show()
            qtbot.waitExposed(wizard)
            return wizard

        yield start, stubber
        assert runner.shutdown(20000)
        stubber.assert_no_pending_responses()


def change_set(stubber: Stubber, existing: str | None) -> None:
    if existing:
        stubber.add_response("describe_stacks", {"Stacks": [ev.stack_description(existing)]})
    else:
        stubber.add_client_error("describe_stacks", "ValidationError", "Stack with id tinyllama does not exist")
    stubber.add_response("create_change_set", {"Id": "arn:cs/1", "StackId": ev.STACK_ID},
                         {"StackName": ev.STACK, "ChangeSetName": ANY, "ChangeSetType": "UPDATE" if existing
                          else "CREATE", "TemplateURL": URL, "Parameters": ANY, "Capabilities": ANY, "Tags": ANY})
    for _ in range(2):  # the waiter's answer, then the paginator's page
        stubber.add_response("describe_change_set", {"Status": "CREATE_COMPLETE", "Changes": ev.CHANGES})
    # Where the operation's events begin: the stack's newest event before it runs.
    stubber.add_response("describe_stack_events", {"StackEvents": list(reversed(EARLIER))}, {"StackName": ev.STACK_ID})
    stubber.add_response("execute_change_set", {}, {"ChangeSetName": "arn:cs/1", "StackName": ev.STACK,
                                                    "ClientRequestToken": ANY})


def rows(table: Any) -> list[list[str]]:
    return [[table.item(r, c).text() if table.item(r, c) else "" for c in range(table.columnCount())]
            for r in range(table.rowCount())]


def step(qtbot: Any, wizard: DeployWizard, events_before: int) -> None:
    """Fire the next poll now and wait until its answer is on screen."""
    page = wizard.deploy_page
    page.timer.start(0)
    qtbot.waitUntil(lambda: page.events.rowCount() > events_before or page._finished, timeout=5000)


def test_review_table_then_progress_then_failure_and_rollback(qtbot: Any,
                                                              stubbed: tuple[Any, Stubber]) -> None:
    start, stubber = stubbed
    change_set(stubber, existing=None)
    ev.add_polls(stubber, ev.CREATE_FAILS_AND_ROLLS_BACK, earlier=EARLIER)

    wizard = start()
    qtbot.waitUntil(wizard.review_page.isComplete, timeout=5000)
    assert rows(wizard.review_page.table) == [
        ["Add", "AlertTopic", "AWS::SNS::Topic", ""],
        ["Modify", "WorkerLaunchTemplate", "AWS::EC2::LaunchTemplate", "Properties"],
        ["Replace", "RedisCluster", "AWS::ElastiCache::ReplicationGroup", "Properties"],
        ["Modify (may replace)", "WorkerInstance", "AWS::EC2::Instance", "Properties, Tags"],
        ["Remove", "Dashboard", "AWS::CloudWatch::Dashboard", ""],
    ]
    assert "1 to add, 3 to change (2 replaced), 1 to remove" in wizard.review_page.summary.text()
    assert "Replaced resources are deleted and made anew" in wizard.review_page.warning.text()
    assert wizard.button(QWizard.WizardButton.CommitButton).text() == "Deploy"
    save_screenshot(wizard, "wizard_4_review.png")

    wizard.next()
    page = wizard.deploy_page
    assert wizard.currentId() == DEPLOY
    assert not wizard.button(QWizard.WizardButton.CancelButton).isEnabled()  # can't walk away mid-deploy
    qtbot.waitUntil(lambda: page.events.rowCount() == 3, timeout=5000)  # the first poll runs at once
    assert page.progress.value() == 0 and "CREATE_IN_PROGRESS" in page.status.text()
    step(qtbot, wizard, 3)
    assert page.events.rowCount() == 8 and "ROLLBACK_IN_PROGRESS" in page.status.text()
    assert page.progress.value() == 60  # Vpc, WorkerInstance, RedisCluster settled, of 5 in the change set
    save_screenshot(wizard, "wizard_5_deploy_progress.png")
    assert not page.outcome.isVisible()  # a rollback in progress is not the end
    step(qtbot, wizard, 8)
    assert not page._finished
    step(qtbot, wizard, 10)
    qtbot.waitUntil(lambda: page.outcome.isVisible(), timeout=5000)
    assert "ROLLBACK_COMPLETE" in page.status.text()
    text = page.outcome.text()
    assert "WorkerInstance (AWS::EC2::Instance) CREATE_FAILED: You have requested more vCPU capacity" in text
    assert "rolled back" in text and "Running On-Demand G and VT instances" in text and "delete it" in text
    assert [r[2] for r in rows(page.events)][-1] == "ROLLBACK_COMPLETE"
    assert not page.isComplete()  # Next stays off after a failure
    assert wizard.button(QWizard.WizardButton.CancelButton).text() == "Close"
    assert wizard.button(QWizard.WizardButton.CancelButton).isEnabled()
    save_screenshot(wizard, "wizard_5_deploy_failed.png")


def test_cancel_an_update_follows_the_rollback(qtbot: Any, stubbed: tuple[Any, Stubber]) -> None:
    start, stubber = stubbed
    change_set(stubber, existing="UPDATE_COMPLETE")
    ev.add_polls(stubber, ev.UPDATE_CANCELLED[:1], earlier=EARLIER)
    stubber.add_response("cancel_update_stack", {}, {"StackName": ev.STACK_ID, "ClientRequestToken": ANY})
    ev.add_polls(stubber, ev.UPDATE_CANCELLED, first=1, earlier=EARLIER)

    wizard = start()
    qtbot.waitUntil(wizard.review_page.isComplete, timeout=5000)
    assert "<b>Update tinyllama</b>" in wizard.review_page.summary.text()
    wizard.next()
    page = wizard.deploy_page
    qtbot.waitUntil(lambda: page.events.rowCount() == 2 and page.cancel_button.isEnabled(), timeout=5000)
    page.cancel_button.click()
    qtbot.waitUntil(lambda: page.events.rowCount() == 3, timeout=5000)
    assert rows(page.events)[-1][2:] == ["CANCEL REQUESTED", "Update cancelled; CloudFormation is rolling the "
                                         "stack back to how it was."]
    for before in (3, 5, 7):
        step(qtbot, wizard, before)
    qtbot.waitUntil(lambda: page.outcome.isVisible(), timeout=5000)
    assert "UPDATE_ROLLBACK_COMPLETE" in page.status.text()
    assert "Stack update cancelled" in page.outcome.text() and "back as it was" in page.outcome.text()


def test_successful_create_reads_the_outputs(qtbot: Any, stubbed: tuple[Any, Stubber]) -> None:
    start, stubber = stubbed
    change_set(stubber, existing=None)
    ev.add_polls(stubber, ev.CREATE_OK, earlier=EARLIER)
    outputs = {"ApiUrl": "https://x.execute-api.us-east-1.amazonaws.com", "Region": "us-east-1",
               "UserPoolId": "us-east-1_Abc", "UserPoolClientId": "c1", "InstanceId": "i-1"}
    stubber.add_response("describe_stacks", {"Stacks": [ev.stack_description("CREATE_COMPLETE", outputs)]})
    wizard = start()
    qtbot.waitUntil(wizard.review_page.isComplete, timeout=5000)
    wizard.next()
    page = wizard.deploy_page
    for before in (0, 4, 7):
        if not page._finished:
            step(qtbot, wizard, before)
    qtbot.waitUntil(page.isComplete, timeout=5000)
    assert page.progress.value() == 100 and wizard.ctx.outputs == outputs
    wizard.next()
    assert wizard.done_page.user_box.isVisible() and wizard.done_page.sign_in.isChecked()
