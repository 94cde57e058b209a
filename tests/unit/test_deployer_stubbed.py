"""The deployer's change-set review, progress, failure, rollback and cancel, on a Stubber.

moto's change sets are broken and its CloudFormation emits only stack-level events and no
failures (DESIGN.md), so these feed botocore Stubbers realistic answers instead
(tests/fixtures/cfn_events.py). Stubber.assert_no_pending_responses() checks that the
deployer made exactly the calls a real run would.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.stub import ANY, Stubber

from desktop.services.deploy.changes import ChangeRow, ChangeSetReview
from desktop.services.deploy.errors import DeployError
from desktop.services.deploy.events import StackWatcher, WatchUpdate
from desktop.services.deploy.stack import StackDeployer
from desktop.services.deploy.users import create_first_user
from tests.fixtures import cfn_events as ev

URL = "https://tinyllama-bootstrap-123456789012-us-east-1.s3.us-east-1.amazonaws.com/tinyllama/abc/stack.yaml"


@pytest.fixture
def cfn() -> Iterator[tuple[Any, Stubber]]:
    client = boto3.client("cloudformation", region_name="us-east-1", aws_access_key_id="x",
                          aws_secret_access_key="x")
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()


def no_stack(stubber: Stubber) -> None:
    stubber.add_client_error("describe_stacks", "ValidationError", "Stack with id tinyllama does not exist", 400)


def test_change_set_becomes_rows_with_replacement_flagged(cfn: tuple[Any, Stubber]) -> None:
    client, stubber = cfn
    stubber.add_response("describe_stacks", {"Stacks": [ev.stack_description("UPDATE_COMPLETE")]})
    stubber.add_response("create_change_set", {"Id": "arn:cs/1", "StackId": ev.STACK_ID},
                         {"StackName": ev.STACK, "ChangeSetName": ANY, "ChangeSetType": "UPDATE",
                          "TemplateURL": URL, "Parameters": [{"ParameterKey": "InstanceType",
                                                              "ParameterValue": "g5.xlarge"}],
                          "Capabilities": ANY, "Tags": [{"Key": "app", "Value": "tinyllama"}]})
    # botocore's change_set_create_complete waiter: pending, then complete ...
    stubber.add_response("describe_change_set", {"Status": "CREATE_PENDING", "ChangeSetId": "arn:cs/1"},
                         {"ChangeSetName": "arn:cs/1", "StackName": ev.STACK})
    stubber.add_response("describe_change_set", {"Status": "CREATE_COMPLETE", "Changes": ev.CHANGES[:3],
                                                 "NextToken": "page2"})
    # ... then its paginator reads every page of rows (the rows come in pages of NextToken).
    stubber.add_response("describe_change_set", {"Status": "CREATE_COMPLETE", "Changes": ev.CHANGES[:3],
                                                 "NextToken": "page2"},
                         {"ChangeSetName": "arn:cs/1", "StackName": ev.STACK})
    stubber.add_response("describe_change_set", {"Status": "CREATE_COMPLETE", "Changes": ev.CHANGES[3:]},
                         {"ChangeSetName": "arn:cs/1", "StackName": ev.STACK, "NextToken": "page2"})
    review = StackDeployer(client, waiter_delay_s=0).create_change_set(
        ev.STACK, URL, {"InstanceType": "g5.xlarge"}, {"app": "tinyllama"})
    assert review.change_type == "UPDATE" and review.change_set_id == "arn:cs/1"
    assert [(r.action, r.logical_id, r.replacement, r.replaces) for r in review.rows] == [
        ("Add", "AlertTopic", "", False),
        ("Modify", "WorkerLaunchTemplate", "False", False),
        ("Modify", "RedisCluster", "True", True),
        ("Modify", "WorkerInstance", "Conditional", True),
        ("Remove", "Dashboard", "", False),
    ]
    assert review.rows[3].scope == "Properties, Tags"


def test_change_set_without_changes_is_deleted_and_empty(cfn: tuple[Any, Stubber]) -> None:
    client, stubber = cfn
    stubber.add_response("describe_stacks", {"Stacks": [ev.stack_description("CREATE_COMPLETE")]})
    stubber.add_response("create_change_set", {"Id": "arn:cs/2", "StackId": ev.STACK_ID})
    stubber.add_response("describe_change_set", {
        "Status": "FAILED", "StatusReason": "The submitted information didn't contain changes. Submit different "
        "information to create a change set."})
    stubber.add_response("delete_change_set", {}, {"ChangeSetName": "arn:cs/2", "StackName": ev.STACK})
    review = StackDeployer(client, wait=lambda _s: None).create_change_set(ev.STACK, URL, {})
    assert review.empty and review.change_set_id == ""


def test_change_set_failure_is_explained(cfn: tuple[Any, Stubber]) -> None:
    client, stubber = cfn
    no_stack(stubber)
    stubber.add_response("create_change_set", {"Id": "arn:cs/3", "StackId": ev.STACK_ID})
    stubber.add_response("describe_change_set", {
        "Status": "FAILED", "StatusReason": "Parameter 'AlertEmail' must match pattern ^[^@\\s]+@[^@\\s]+$"})
    with pytest.raises(DeployError, match="could not be created: Parameter 'AlertEmail'"):
        StackDeployer(client, wait=lambda _s: None).create_change_set(ev.STACK, URL, {})


def test_declined_create_review_removes_the_empty_stack(cfn: tuple[Any, Stubber]) -> None:
    client, stubber = cfn
    no_stack(stubber)
    stubber.add_response("create_change_set", {"Id": "arn:cs/4", "StackId": ev.STACK_ID},
                         {"StackName": ev.STACK, "ChangeSetName": ANY, "ChangeSetType": "CREATE",
                          "TemplateURL": URL, "Parameters": [], "Capabilities": ANY, "Tags": []})
    for _ in range(2):  # the waiter's answer, then the paginator's page
        stubber.add_response("describe_change_set", {"Status": "CREATE_COMPLETE", "Changes": ev.CHANGES[:1]})
    stubber.add_response("delete_change_set", {})
    stubber.add_response("delete_stack", {}, {"StackName": ev.STACK_ID})  # the REVIEW_IN_PROGRESS shell
    deployer = StackDeployer(client, wait=lambda _s: None)
    review = deployer.create_change_set(ev.STACK, URL, {})
    deployer.discard_change_set(review)


def test_a_rolled_back_create_must_be_deleted_first(cfn: tuple[Any, Stubber]) -> None:
    client, stubber = cfn
    stubber.add_response("describe_stacks", {"Stacks": [ev.stack_description("ROLLBACK_COMPLETE")]})
    with pytest.raises(DeployError, match="delete it first"):
        StackDeployer(client).create_change_set(ev.STACK, URL, {})


def test_create_progress_to_complete(cfn: tuple[Any, Stubber]) -> None:
    client, stubber = cfn
    ev.add_polls(stubber, ev.CREATE_OK)
    watcher = StackWatcher(client, ev.STACK_ID, expected=3)
    seen, progress = [], []
    final = StackDeployer(client, wait=lambda _s: None).follow(
        watcher, lambda u: (seen.extend(u.events), progress.append(u.progress)))
    assert final.succeeded and final.status == "CREATE_COMPLETE" and not final.failure
    assert [e.status for e in seen if e.logical_id == "Vpc"] == ["CREATE_IN_PROGRESS", "CREATE_IN_PROGRESS",
                                                                  "CREATE_COMPLETE"]
    assert len({e.event_id for e in seen}) == len(seen) == 9  # each event once, oldest first
    assert progress == [0.0, pytest.approx(2 / 3), 1.0]


def test_failed_create_is_followed_through_its_rollback(cfn: tuple[Any, Stubber]) -> None:
    client, stubber = cfn
    ev.add_polls(stubber, ev.CREATE_FAILS_AND_ROLLS_BACK)
    watcher = StackWatcher(client, ev.STACK_ID, expected=3)
    updates = []
    final = StackDeployer(client, wait=lambda _s: None).follow(watcher, updates.append)
    assert [u.status for u in updates] == ["CREATE_IN_PROGRESS", "ROLLBACK_IN_PROGRESS", "ROLLBACK_IN_PROGRESS",
                                           "ROLLBACK_COMPLETE"]
    assert [u.done for u in updates] == [False, False, False, True]
    assert final.rolled_back and not final.succeeded
    # The real cause, not the knock-on "cancelled" or the stack's summary.
    assert final.failure.startswith("WorkerInstance (AWS::EC2::Instance) CREATE_FAILED: You have requested more vCPU")
    assert "Service Quotas" in final.advice and "Running On-Demand G and VT instances" in final.advice
    assert "delete it" in final.advice  # ROLLBACK_COMPLETE cannot be updated


def test_cancel_an_update_rolls_it_back(cfn: tuple[Any, Stubber]) -> None:
    client, stubber = cfn
    ev.add_polls(stubber, ev.UPDATE_CANCELLED[:1])
    stubber.add_response("cancel_update_stack", {}, {"StackName": ev.STACK_ID, "ClientRequestToken": ANY})
    ev.add_polls(stubber, ev.UPDATE_CANCELLED, first=1)
    deployer = StackDeployer(client, wait=lambda _s: None)
    watcher = StackWatcher(client, ev.STACK_ID, expected=1, operation="UPDATE")
    assert watcher.poll().status == "UPDATE_IN_PROGRESS"
    assert "rolling the stack back" in deployer.cancel(watcher)
    final = deployer.follow(watcher)
    assert final.status == "UPDATE_ROLLBACK_COMPLETE" and final.rolled_back and not final.succeeded
    assert "Stack update cancelled" in final.failure
    assert "back as it was" in final.advice


@pytest.fixture
def local_now() -> datetime:
    """This machine's clock, read once: the one thing the skew tests set AWS's timestamps against."""
    return datetime.now(UTC).replace(microsecond=0)


@pytest.mark.parametrize("aws_ahead_s", [-180, 180], ids=["local-clock-3-min-fast", "local-clock-3-min-slow"])
def test_an_update_is_followed_by_event_ids_whatever_the_local_clock_says(
        cfn: tuple[Any, Stubber], local_now: datetime, aws_ahead_s: int) -> None:
    """AWS stamps events with its own clock. With the local clock fast, the update's events
    are 'in the past'; with it slow, the previous operation's are 'in the future'. Neither
    may change which events the watcher reports."""
    client, stubber = cfn
    aws_now = local_now + timedelta(seconds=aws_ahead_s)
    earlier = ev.history_of(ev.UPDATE_OK, t0=aws_now - timedelta(seconds=60), token="Console-UpdateStack-1")
    review = ChangeSetReview(ev.STACK, "", "UPDATE", [ChangeRow("Modify", "WorkerLaunchTemplate",
                                                                "AWS::EC2::LaunchTemplate", "False")], ev.STACK_ID,
                             template_url=URL)
    stubber.add_response("describe_stack_events", {"StackEvents": list(reversed(earlier))},
                         {"StackName": ev.STACK_ID})  # the newest event before the update starts
    stubber.add_response("update_stack", {"StackId": ev.STACK_ID},
                         {"StackName": ev.STACK, "TemplateURL": URL, "Parameters": [], "Capabilities": ANY,
                          "Tags": [], "ClientRequestToken": ANY})
    ev.add_polls(stubber, ev.UPDATE_OK, t0=aws_now, earlier=earlier)
    deployer = StackDeployer(client, wait=lambda _s: None, use_change_sets=False)
    watcher = deployer.execute(review)
    assert watcher.token.startswith("tinyllama-update-")
    updates: list[WatchUpdate] = []
    final = deployer.follow(watcher, updates.append)
    assert [[e.status for e in u.events] for u in updates] == [
        ["UPDATE_IN_PROGRESS", "UPDATE_IN_PROGRESS"], ["UPDATE_COMPLETE", "UPDATE_COMPLETE_CLEANUP_IN_PROGRESS"],
        ["UPDATE_COMPLETE"]]
    assert not any(e.event_id.startswith("earlier-") for e in watcher.events)  # the console's update is not ours
    assert [u.progress for u in updates] == [0.0, 0.99, 1.0] and final.succeeded


def test_a_create_sends_a_request_token_and_takes_every_event_of_the_new_stack(
        cfn: tuple[Any, Stubber], local_now: datetime) -> None:
    client, stubber = cfn
    stubber.add_response("create_stack", {"StackId": ev.STACK_ID},
                         {"StackName": ev.STACK, "TemplateURL": URL, "Parameters": [], "Capabilities": ANY,
                          "Tags": [], "ClientRequestToken": ANY})
    ev.add_polls(stubber, ev.CREATE_OK, t0=local_now - timedelta(minutes=5), token="tok")
    deployer = StackDeployer(client, wait=lambda _s: None, use_change_sets=False)
    watcher = deployer.execute(ChangeSetReview(ev.STACK, "", "CREATE", [], template_url=URL))
    final = deployer.follow(watcher)
    assert final.succeeded and watcher.token.startswith("tinyllama-create-")
    assert len(watcher.events) == 9 and {e.client_request_token for e in watcher.events} == {"tok"}


def test_cancel_a_create_deletes_it(cfn: tuple[Any, Stubber]) -> None:
    client, stubber = cfn
    ev.add_polls(stubber, ev.CREATE_OK[:1])
    stubber.add_response("delete_stack", {}, {"StackName": ev.STACK_ID, "ClientRequestToken": ANY})
    watcher = StackWatcher(client, ev.STACK_ID)
    watcher.poll()
    assert "being deleted" in StackDeployer(client).cancel(watcher)
    assert watcher.operation == "DELETE"


def test_delete_that_fails_on_a_full_bucket_says_to_empty_it(cfn: tuple[Any, Stubber]) -> None:
    client, stubber = cfn
    ev.add_polls(stubber, ev.DELETE_FAILS_ON_BUCKET)
    final = StackDeployer(client, wait=lambda _s: None).follow(StackWatcher(client, ev.STACK_ID))
    assert final.status == "DELETE_FAILED"
    assert "DataBucket" in final.failure and "not empty" in final.failure
    assert "empty it" in final.advice


def test_deleted_stack_that_no_longer_exists_is_complete(cfn: tuple[Any, Stubber]) -> None:
    client, stubber = cfn
    stubber.add_client_error("describe_stack_events", "ValidationError", "Stack [tinyllama] does not exist")
    stubber.add_client_error("describe_stacks", "ValidationError", "Stack with id tinyllama does not exist")
    update = StackWatcher(client, ev.STACK).poll()
    assert update.done and update.succeeded and update.status == "DELETE_COMPLETE"


def test_access_denied_is_said_in_words(cfn: tuple[Any, Stubber]) -> None:
    client, stubber = cfn
    stubber.add_client_error("describe_stacks", "AccessDenied", "User: arn:aws:iam::1:user/x is not authorized to "
                             "perform: cloudformation:DescribeStacks", 403)
    with pytest.raises(DeployError, match=r"Permission denied while looking up stack .* Ask your administrator"):
        StackDeployer(client).describe(ev.STACK)


def test_bootstrap_bucket_on_aws_denies_plain_http() -> None:
    s3 = boto3.client("s3", region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="x")
    name = "tinyllama-bootstrap-123456789012-eu-west-1"
    with Stubber(s3) as stubber:
        stubber.add_client_error("head_bucket", "404", "Not Found", 404)
        stubber.add_response("create_bucket", {}, {"Bucket": name,
                                                   "CreateBucketConfiguration": {"LocationConstraint": "eu-west-1"}})
        # bucket_exists waiter: succeeds on a 200
        stubber.add_response("head_bucket", {"ResponseMetadata": {"HTTPStatusCode": 200}},
                             {"Bucket": name, "ExpectedBucketOwner": "123456789012"})
        for op in ("put_public_access_block", "put_bucket_encryption", "put_bucket_versioning"):
            stubber.add_response(op, {})
        stubber.add_response("put_bucket_policy", {}, {"Bucket": name, "Policy": ANY})
        assert StackDeployer(s3_client=s3, region="eu-west-1").ensure_bootstrap_bucket("123456789012") == (name, True)
        stubber.assert_no_pending_responses()


def test_first_user_with_a_temporary_password_or_an_invitation() -> None:
    cognito = boto3.client("cognito-idp", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    with Stubber(cognito) as stubber:
        stubber.add_response("admin_create_user", {"User": {"Username": "ada"}}, {
            "UserPoolId": "us-east-1_abc", "Username": "ada", "UserAttributes": ANY,
            "TemporaryPassword": ANY, "MessageAction": "SUPPRESS"})
        stubber.add_response("admin_create_user", {"User": {"Username": "bob"}}, {
            "UserPoolId": "us-east-1_abc", "Username": "bob", "UserAttributes": ANY,
            "DesiredDeliveryMediums": ["EMAIL"]})
        stubber.add_client_error("admin_create_user", "UsernameExistsException", "User account already exists")
        password = create_first_user(cognito, "us-east-1_abc", "ada", "ada@example.com", invite_by_email=False)
        assert len(password) == 16 and any(c.isdigit() for c in password) and any(c.isupper() for c in password)
        assert create_first_user(cognito, "us-east-1_abc", "bob", "bob@example.com", invite_by_email=True) == ""
        with pytest.raises(DeployError, match="already exists"):
            create_first_user(cognito, "us-east-1_abc", "ada", "ada@example.com", invite_by_email=True)
