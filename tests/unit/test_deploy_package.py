"""The deploy package's edges on botocore Stubbers: only AWS failures become words (a bug
stays a bug), botocore's waiters and paginators end and page the way AWS answers, and
emptying a bucket says what it could not delete."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.stub import Stubber

from desktop.services.deploy.bucket import empty_bucket
from desktop.services.deploy.errors import DeployError
from desktop.services.deploy.events import StackWatcher
from desktop.services.deploy.stack import StackDeployer
from tests.fixtures import cfn_events as ev

URL = "https://tinyllama-bootstrap-123456789012-us-east-1.s3.us-east-1.amazonaws.com/tinyllama/abc/stack.yaml"


def client(name: str) -> Any:
    return boto3.client(name, region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")


@pytest.fixture
def cfn() -> Iterator[tuple[Any, Stubber]]:
    c = client("cloudformation")
    with Stubber(c) as stubber:
        yield c, stubber
        stubber.assert_no_pending_responses()


def new_change_set(stubber: Stubber) -> None:
    stubber.add_client_error("describe_stacks", "ValidationError", "Stack with id tinyllama does not exist")
    stubber.add_response("create_change_set", {"Id": "arn:cs/1", "StackId": ev.STACK_ID})


def test_a_bug_below_the_deployer_is_not_dressed_up_as_an_aws_answer() -> None:
    c = client("cloudformation")  # the fault is raised before any request leaves

    def bug(**_kwargs: Any) -> None:
        raise ZeroDivisionError("a fault in our own code")

    c.meta.events.register("before-parameter-build.cloudformation.DescribeStacks", bug)
    with pytest.raises(ZeroDivisionError):
        StackDeployer(c).describe(ev.STACK)


def test_a_change_set_still_pending_at_the_deadline_says_so(cfn: tuple[Any, Stubber]) -> None:
    c, stubber = cfn
    new_change_set(stubber)
    for _ in range(2):  # the waiter's two attempts within the timeout
        stubber.add_response("describe_change_set", {"Status": "CREATE_IN_PROGRESS"})
    with pytest.raises(DeployError, match="still being created") as info:
        StackDeployer(c, waiter_delay_s=0.001).create_change_set(ev.STACK, URL, {}, timeout_s=0.002)
    assert info.value.code == "Timeout"


def test_a_change_set_the_waiter_cannot_read_is_explained(cfn: tuple[Any, Stubber]) -> None:
    c, stubber = cfn
    new_change_set(stubber)
    stubber.add_client_error("describe_change_set", "ValidationError", "ChangeSet [arn:cs/1] does not exist")
    with pytest.raises(DeployError, match=r"AWS refused while creating the change set: ChangeSet \[arn:cs/1\] "
                                          r"does not exist \(ValidationError\)"):
        StackDeployer(c, waiter_delay_s=0).create_change_set(ev.STACK, URL, {})


def test_the_watcher_reads_every_page_of_a_new_operations_events(cfn: tuple[Any, Stubber]) -> None:
    c, stubber = cfn
    events = ev.history_of(ev.CREATE_OK, token="tok")  # oldest first; AWS answers newest first
    newest_first = list(reversed(events))
    stubber.add_response("describe_stack_events", {"StackEvents": newest_first[:4], "NextToken": "p2"},
                         {"StackName": ev.STACK_ID})
    stubber.add_response("describe_stack_events", {"StackEvents": newest_first[4:]},
                         {"StackName": ev.STACK_ID, "NextToken": "p2"})
    stubber.add_response("describe_stacks", {"Stacks": [ev.stack_description("CREATE_COMPLETE")]})
    update = StackWatcher(c, ev.STACK_ID, expected=3).poll()
    assert [e.event_id for e in update.events] == [e["EventId"] for e in events]
    assert update.done and update.succeeded


def test_emptying_a_bucket_pages_through_versions_and_reports_what_stays() -> None:
    s3 = client("s3")
    page1 = {"Versions": [{"Key": f"k{i}", "VersionId": f"v{i}"} for i in range(3)], "IsTruncated": True,
             "NextKeyMarker": "k2", "NextVersionIdMarker": "v2"}
    page2 = {"DeleteMarkers": [{"Key": "k9", "VersionId": "d9"}], "IsTruncated": False}
    with Stubber(s3) as stubber:
        stubber.add_response("list_object_versions", page1, {"Bucket": "data"})
        stubber.add_response("delete_objects", {}, {"Bucket": "data", "Delete": {
            "Objects": [{"Key": f"k{i}", "VersionId": f"v{i}"} for i in range(3)], "Quiet": True}})
        stubber.add_response("list_object_versions", page2,
                             {"Bucket": "data", "KeyMarker": "k2", "VersionIdMarker": "v2"})
        stubber.add_response("delete_objects", {"Errors": [{"Key": "k9", "Code": "AccessDenied",
                                                            "Message": "Access Denied"}]})
        with pytest.raises(DeployError, match=r"1 object in data could not be deleted, e\.g\. k9: Access Denied"):
            empty_bucket(s3, "data")
        stubber.assert_no_pending_responses()


def test_an_html_error_page_instead_of_aws_is_words_not_a_bug() -> None:
    # Seen from the app against an endpoint answering 500 with an HTML page (a corporate
    # proxy does the same): botocore raises ResponseParserError, which is no BotoCoreError.
    class HtmlErrorPage(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            body = b"<!doctype html>\n<title>500 Internal Server Error</title>\n"
            self.send_response(500)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), HtmlErrorPage)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        cfn = boto3.client("cloudformation", region_name="us-east-1", aws_access_key_id="x",
                           aws_secret_access_key="x", endpoint_url=f"http://127.0.0.1:{server.server_port}",
                           config=Config(retries={"max_attempts": 1}))
        with pytest.raises(DeployError) as caught:
            StackDeployer(cfn).describe(ev.STACK)
    finally:
        server.shutdown()
        server.server_close()
    assert caught.value.code == "NotAnAwsAnswer"
    assert "was not AWS's" in str(caught.value) and "<html" not in str(caught.value)


def test_a_volume_smaller_than_the_images_snapshot_is_explained() -> None:
    from desktop.services.deploy.events import explain_failure

    reason = ("Volume of size 40GB is smaller than snapshot 'snap-0123456789abcdef0', expect size >= 75GB "
              "(Service: Ec2, Status Code: 400)")
    assert "RootVolumeGiB" in explain_failure(reason)
