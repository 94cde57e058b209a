"""The deploy wizard driven page by page with pytest-qt, against moto's server.

Credentials are typed in (moto's fake keys), the router zip and worker wheel are small
stand-ins (the real builds need pip and the network), and the template is a small one
moto can run with the full stack's parameter names and outputs; moto's change sets are
broken (DESIGN.md), so the deployer runs with `use_change_sets=False` here. The change-set
table, progress, failure, rollback and cancel screens are in test_deploy_wizard_stubbed.py.
"""

from __future__ import annotations

import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from PySide6.QtWidgets import QWizard

from desktop.core.settings import Settings
from desktop.qt.runner import Runner
from desktop.services.artifacts import INSTALL_SCRIPT, Builders
from desktop.services.deploy.stack import StackDeployer
from desktop.views.wizard import DeployWizard, WizardContext
from desktop.views.wizard.wizard import ACCOUNT, DEPLOY, DONE, OPTIONS, REVIEW, UPLOAD
from tests.fixtures.aws import FAKE_CREDENTIALS, cognito_client
from tests.gui.conftest import save_screenshot

TEMPLATE = """\
AWSTemplateFormatVersion: '2010-09-09'
Description: stack.yaml's parameters and outputs around what moto can create.
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
Resources:
  DataBucket:
    Type: AWS::S3::Bucket
  Settings:
    Type: AWS::SSM::Parameter
    Properties:
      Name: !Sub '/tinyllama/${AWS::StackName}/settings'
      Type: String
      Value: !Ref InstanceType  # moto re-resolves a Ref on update (not a multi-part Sub)
Outputs:
  ApiUrl: {Value: !Sub 'https://abc123.execute-api.${AWS::Region}.amazonaws.com'}
  Region: {Value: !Ref 'AWS::Region'}
  UserPoolId: {Value: POOL_ID}
  UserPoolClientId: {Value: CLIENT_ID}
  InstanceId: {Value: i-0123456789abcdef0}
  DataBucket: {Value: !Ref DataBucket}
  BudgetName: {Value: !Sub '${AWS::StackName}-monthly'}
"""


@pytest.fixture
def endpoint(aws_env: str, monkeypatch: pytest.MonkeyPatch) -> str:
    # moto reads a TemplateURL on `localhost` path-style (any other host as a bucket name).
    url = aws_env.replace("127.0.0.1", "localhost")
    monkeypatch.setenv("AWS_ENDPOINT_URL", url)
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name)  # the keys must come from the wizard's fields
    return url


@pytest.fixture
def pool(endpoint: str) -> tuple[str, str]:
    cognito = cognito_client(endpoint)
    pool_id = cognito.create_user_pool(PoolName=f"tl-{uuid.uuid4().hex[:6]}")["UserPool"]["Id"]
    client_id = cognito.create_user_pool_client(UserPoolId=pool_id, ClientName="app")["UserPoolClient"]["ClientId"]
    return pool_id, client_id


def aws(name: str) -> Any:
    """A client for the test's own checks (the environment has no keys: the wizard's fields do)."""
    return boto3.client(name, region_name="us-east-1", aws_access_key_id=FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
                        aws_secret_access_key=FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"])


def fake_builders(tmp_path: Path, pool: tuple[str, str]) -> Builders:
    template = tmp_path / "stack.yaml"
    template.write_text(TEMPLATE.replace("POOL_ID", pool[0]).replace("CLIENT_ID", pool[1]))

    def router_zip(workdir: Path) -> Path:
        out = workdir / "router.zip"
        with zipfile.ZipFile(out, "w") as archive:
            archive.writestr("backend/__init__.py", "")
        return out

    def wheel(workdir: Path) -> Path:
        out = workdir / "tinyllama-0.1.0-py3-none-any.whl"
        with zipfile.ZipFile(out, "w") as archive:
            archive.writestr("tinyllama-0.1.0.dist-info/METADATA", "Name: tinyllama\n")
        return out

    return Builders(router_zip=router_zip, worker_wheel=wheel, install_script=INSTALL_SCRIPT,
                    templates={"stack": template, "mvp": template})


@pytest.fixture
def make_wizard(qtbot: Any, tmp_path: Path, pool: tuple[str, str]) -> Iterator[Any]:
    runners: list[Runner] = []

    def make(settings: Settings) -> DeployWizard:
        runner = Runner()
        runners.append(runner)
        ctx = WizardContext(settings, runner, builders=fake_builders(tmp_path, pool), poll_interval_ms=0,
                            deployer_factory=lambda session, region: StackDeployer(
                                session=session, region=region, use_change_sets=False, wait=lambda _s: None))
        wizard = DeployWizard(ctx, profiles=[])
        qtbot.addWidget(wizard)
        wizard.show()
        qtbot.waitExposed(wizard)
        return wizard

    yield make
    for runner in runners:
        assert runner.shutdown(20000)


def check_account(qtbot: Any, wizard: DeployWizard, stack: str, delete: bool = False) -> None:
    page = wizard.account_page
    assert wizard.currentId() == ACCOUNT and page.use_keys.isChecked()  # no profiles: typed keys
    page.stack_name.setText(stack)
    page.region.setCurrentText("us-east-1")
    page.check_button.click()
    assert "type both the access key id and the secret" in page.result.text()
    assert not page.isComplete()
    page.access_key.setText("testing")
    page.secret_key.setText("testing")
    page.delete.setChecked(delete)
    page.check_button.click()
    qtbot.waitUntil(page.isComplete, timeout=10000)


def test_deploy_a_new_stack_then_delete_it(qtbot: Any, make_wizard: Any, paths: Any, endpoint: str,
                                           pool: tuple[str, str]) -> None:
    settings = Settings(paths.settings_file)
    stack = f"tl-gui-{uuid.uuid4().hex[:6]}"
    wizard = make_wizard(settings)

    check_account(qtbot, wizard, stack)
    assert "Account 123456789012, us-east-1" in wizard.account_page.result.text()
    assert "does not exist yet" in wizard.account_page.result.text()
    save_screenshot(wizard, "wizard_1_account.png")
    wizard.account_page.stack_name.setText(stack + "x")  # an edit after the check asks for a new check
    assert not wizard.account_page.isComplete()
    wizard.account_page.stack_name.setText(stack)
    wizard.account_page.check_button.click()
    qtbot.waitUntil(wizard.account_page.isComplete, timeout=10000)

    wizard.next()
    options = wizard.options_page
    assert wizard.currentId() == OPTIONS and not options.isComplete()  # no alert e-mail yet
    assert "Alert e-mail" in options.problems.text()
    options.email.setText("ada@example.com")
    assert options.isComplete()
    total = options.idle_total.text()
    options.redis.setCurrentIndex(options.redis.findData("elasticache-node"))
    assert options.idle_total.text() != total  # the estimate follows the options
    assert "Redis: ElastiCache cache.t4g.micro" in [options.cost_table.item(r, 0).text()
                                                   for r in range(options.cost_table.rowCount())]
    options.redis.setCurrentIndex(options.redis.findData("serverless-valkey"))
    options.instance_type.setCurrentText("g5.xlarge")
    assert "$1.011 / hour (g5.xlarge)" in options.gpu_hour.text()  # the instance and its public IPv4
    options.warning.setValue(15)
    options.cap.setValue(20)
    options.rate.setValue(1.08)
    assert "warning $16, hard cap $21" in options.usd.text()
    save_screenshot(wizard, "wizard_2_options.png")

    wizard.next()
    assert wizard.currentId() == UPLOAD
    qtbot.waitUntil(wizard.upload_page.isComplete, timeout=15000)
    log = [wizard.upload_page.log.item(i).text() for i in range(wizard.upload_page.log.count())]
    assert any("bootstrap bucket tinyllama-bootstrap-123456789012-us-east-1" in line for line in log)
    assert "Uploaded 4 files" in log[-1]
    assert wizard.ctx.uploaded is not None
    assert wizard.ctx.uploaded.parameters["WorkerWheelKey"].endswith("/tinyllama-0.1.0-py3-none-any.whl")
    save_screenshot(wizard, "wizard_3_upload.png")

    wizard.next()
    assert wizard.currentId() == REVIEW
    qtbot.waitUntil(wizard.review_page.isComplete, timeout=10000)
    assert wizard.ctx.review is not None
    params = wizard.ctx.review.parameters  # what the deploy sends: options ← uploaded keys
    assert params["WorkerWheelKey"].endswith("/tinyllama-0.1.0-py3-none-any.whl")
    assert params["HardCapUsd"] == "21" and params["InstanceType"] == "g5.xlarge"
    rows = [(wizard.review_page.table.item(r, 0).text(), wizard.review_page.table.item(r, 1).text())
            for r in range(wizard.review_page.table.rowCount())]
    assert rows == [("Add", "DataBucket"), ("Add", "Settings")]
    assert wizard.button(QWizard.WizardButton.CommitButton).text() == "Deploy"

    wizard.next()
    assert wizard.currentId() == DEPLOY
    qtbot.waitUntil(wizard.deploy_page.isComplete, timeout=15000)
    assert wizard.deploy_page.progress.value() == 100
    assert "CREATE_COMPLETE" in wizard.deploy_page.status.text()
    ssm = aws("ssm")
    assert ssm.get_parameter(Name=f"/tinyllama/{stack}/settings")["Parameter"]["Value"] == "g5.xlarge"
    deployed = {p["ParameterKey"]: p["ParameterValue"]
                for p in aws("cloudformation").describe_stacks(StackName=stack)["Stacks"][0]["Parameters"]}
    assert (deployed["RedisMode"], deployed["WarningUsd"], deployed["HardCapUsd"]) == ("serverless-valkey", "16", "21")

    wizard.next()
    done = wizard.done_page
    assert wizard.currentId() == DONE
    saved = Settings(paths.settings_file)  # written to disk, not only in memory
    assert saved.get("aws.api_url") == "https://abc123.execute-api.us-east-1.amazonaws.com"
    assert (saved.get("aws.user_pool_id"), saved.get("aws.client_id")) == pool
    assert saved.get("aws.stack_name") == stack and saved.get("aws.hard_cap_usd") == 21.0
    assert saved.get("aws.budget_name") == f"{stack}-monthly"
    assert saved.get("profile.kind") == "local"  # switching is the person's choice
    done.username.setText("ada")
    done.email.setText("ada@example.com")
    done.create_button.click()
    qtbot.waitUntil(lambda: done.password.isVisible(), timeout=10000)
    user = cognito_client(endpoint).admin_get_user(UserPoolId=pool[0], Username="ada")
    assert user["UserStatus"] == "FORCE_CHANGE_PASSWORD"
    assert len(done.password.text()) == 16
    save_screenshot(wizard, "wizard_6_done.png")
    with qtbot.waitSignal(wizard.sign_in_requested, timeout=5000):
        wizard.accept()
    assert Settings(paths.settings_file).get("profile.kind") == "aws"
    assert Settings(paths.settings_file).get("aws.username") == "ada"

    # Update it from the same place: the options start from what the stack has now.
    wizard = make_wizard(Settings(paths.settings_file))
    check_account(qtbot, wizard, stack)
    assert "Next updates it" in wizard.account_page.result.text()
    wizard.next()
    options = wizard.options_page
    assert options.instance_type.currentText() == "g5.xlarge" and options.email.text() == "ada@example.com"
    assert "hard cap $21 (as deployed now)" in options.usd.text()
    options.instance_type.setCurrentText("g4dn.2xlarge")
    wizard.next()
    qtbot.waitUntil(wizard.upload_page.isComplete, timeout=15000)
    assert any(line.startswith("Reusing the bootstrap bucket") for line in
               (wizard.upload_page.log.item(i).text() for i in range(wizard.upload_page.log.count())))
    wizard.next()
    qtbot.waitUntil(wizard.review_page.isComplete, timeout=10000)
    assert "<b>Update " in wizard.review_page.summary.text()
    wizard.next()
    qtbot.waitUntil(wizard.deploy_page.isComplete, timeout=15000)
    assert "UPDATE_COMPLETE" in wizard.deploy_page.status.text()
    assert ssm.get_parameter(Name=f"/tinyllama/{stack}/settings")["Parameter"]["Value"] == "g4dn.2xlarge"
    deployed = {p["ParameterKey"]: p["ParameterValue"]
                for p in aws("cloudformation").describe_stacks(StackName=stack)["Stacks"][0]["Parameters"]}
    assert (deployed["InstanceType"], deployed["HardCapUsd"]) == ("g4dn.2xlarge", "21")  # the cap kept as it was
    wizard.reject()

    # Delete it from the same place: the review lists what goes and warns about the data.
    s3 = aws("s3")
    bucket = saved.get("aws.data_bucket")
    s3.put_object(Bucket=bucket, Key="history/1.json", Body=b"{}")
    wizard = make_wizard(Settings(paths.settings_file))
    check_account(qtbot, wizard, stack, delete=True)
    assert "Next reviews what deleting removes" in wizard.account_page.result.text()
    wizard.next()
    assert wizard.currentId() == REVIEW  # no options, no upload
    qtbot.waitUntil(wizard.review_page.isComplete, timeout=10000)
    assert wizard.button(QWizard.WizardButton.CommitButton).text() == "Delete"
    assert bucket in wizard.review_page.warning.text() and wizard.review_page.empty_bucket.isVisible()
    table = wizard.review_page.table
    assert {table.item(r, 0).text() for r in range(table.rowCount())} == {"Remove"}
    save_screenshot(wizard, "wizard_4_review_delete.png")
    wizard.review_page.empty_bucket.setChecked(True)
    wizard.next()
    qtbot.waitUntil(wizard.deploy_page.isComplete, timeout=15000)
    assert "DELETE_COMPLETE" in wizard.deploy_page.status.text()
    wizard.next()
    assert "is deleted" in wizard.done_page.summary.text() and not wizard.done_page.user_box.isVisible()
    with pytest.raises(aws("cloudformation").exceptions.ClientError, match="does not exist"):
        aws("cloudformation").describe_stacks(StackName=stack)


def test_deleting_a_stack_that_does_not_exist_says_so(qtbot: Any, make_wizard: Any, paths: Any,
                                                      endpoint: str) -> None:
    wizard = make_wizard(Settings(paths.settings_file))
    page = wizard.account_page
    page.access_key.setText("testing")
    page.secret_key.setText("testing")
    page.stack_name.setText(f"tl-none-{uuid.uuid4().hex[:6]}")
    page.delete.setChecked(True)
    page.check_button.click()
    qtbot.waitUntil(lambda: "no stack" in page.result.text(), timeout=10000)
    assert not page.isComplete()


def test_bad_credentials_are_said_in_words(qtbot: Any, make_wizard: Any, paths: Any, endpoint: str,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens there
    wizard = make_wizard(Settings(paths.settings_file))
    page = wizard.account_page
    page.access_key.setText("AKIAEXAMPLE")
    page.secret_key.setText("wrong")
    page.check_button.click()
    qtbot.waitUntil(lambda: "could not be reached" in page.result.text(), timeout=20000)
    assert not page.isComplete() and page.check_button.isEnabled()
