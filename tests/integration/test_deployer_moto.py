"""The stack deployer and `tinyllama deploy` against moto's server.

What moto's CloudFormation can do is used as it is: identity, the bootstrap bucket, the
upload, and a direct create/update/delete of a small template with a bucket (moto's change
sets are broken, DESIGN.md, so these run with `use_change_sets=False` / `--direct`; the
change-set table is tested with a Stubber in tests/unit/test_deployer_stubbed.py). moto
emits only stack-level events and finishes at once, so the progress and failure paths are
also there, not here.

The endpoint is given as `localhost`: moto reads a TemplateURL on `localhost` path-style,
and any other host as a virtual-hosted bucket name.
"""

from __future__ import annotations

import argparse
import io
import uuid
import zipfile
from pathlib import Path
from typing import Any

import boto3
import pytest

from desktop.services import artifacts
from desktop.services.deploy.bucket import Artifact
from desktop.services.deploy.errors import DeployError
from desktop.services.deploy.stack import StackDeployer

SMALL_TEMPLATE = """\
AWSTemplateFormatVersion: '2010-09-09'
Description: A stand-in for mvp.yaml with what moto models (a bucket) and the same code parameters.
Parameters:
  CodeS3Bucket: {Type: String}
  CodeS3Key: {Type: String}
  AlertEmail: {Type: String}
  SourceRepositoryUrl: {Type: String}
  Suffix: {Type: String, Default: one}
Resources:
  DataBucket:
    Type: AWS::S3::Bucket
  Setting:
    Type: AWS::SSM::Parameter
    Properties:
      Name: !Sub '/tinyllama/${AWS::StackName}/suffix'
      Type: String
      Value: !Ref Suffix
Outputs:
  ApiUrl: {Value: !Sub 'https://api.example.com/${Suffix}'}
  Region: {Value: !Ref 'AWS::Region'}
  DataBucket: {Value: !Ref DataBucket}
  CodeKey: {Value: !Ref CodeS3Key}
"""


@pytest.fixture
def endpoint(aws_env: str, monkeypatch: pytest.MonkeyPatch) -> str:
    url = aws_env.replace("127.0.0.1", "localhost")
    monkeypatch.setenv("AWS_ENDPOINT_URL", url)
    return url


def clients(endpoint: str) -> dict[str, Any]:
    return {name: boto3.client(name, region_name="us-east-1", endpoint_url=endpoint)
            for name in ("cloudformation", "s3", "sts")}


def deployer_for(endpoint: str) -> StackDeployer:
    c = clients(endpoint)
    return StackDeployer(c["cloudformation"], c["s3"], c["sts"], region="us-east-1", use_change_sets=False,
                         wait=lambda _s: None)


def small_files(tmp_path: Path) -> list[Artifact]:
    zip_path = tmp_path / "router.zip"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        archive.writestr("backend/__init__.py", f"# {uuid.uuid4()}\n")
    zip_path.write_bytes(buf.getvalue())
    template = tmp_path / "small.yaml"
    template.write_text(SMALL_TEMPLATE)
    return [Artifact("router.zip", zip_path, keep_name=False), Artifact("template", template)]


def test_identity_is_the_callers_account(endpoint: str) -> None:
    who = deployer_for(endpoint).check_identity()
    assert who.account.isdigit() and len(who.account) == 12
    assert who.arn.startswith("arn:aws:") and who.region == "us-east-1"


def test_identity_without_credentials_says_what_is_missing(endpoint: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name)
    deployer = StackDeployer(region="us-east-1")
    with pytest.raises(DeployError, match="No AWS credentials") as info:
        deployer.check_identity()
    assert info.value.code == "NoCredentials"


def test_bootstrap_bucket_is_private_encrypted_versioned_and_reused(endpoint: str) -> None:
    deployer = deployer_for(endpoint)
    account = deployer.check_identity().account
    name, created = deployer.ensure_bootstrap_bucket(account)
    assert name == f"tinyllama-bootstrap-{account}-us-east-1"
    s3 = clients(endpoint)["s3"]
    # Loosen it by hand: reusing the bucket must tighten it again.
    s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Suspended"})
    s3.delete_public_access_block(Bucket=name)
    again, created_again = deployer.ensure_bootstrap_bucket(account)
    assert again == name and not created_again
    assert created or s3.head_bucket(Bucket=name)  # created now, or by an earlier test in this session
    block = s3.get_public_access_block(Bucket=name)["PublicAccessBlockConfiguration"]
    assert all(block[k] for k in ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy",
                                  "RestrictPublicBuckets"))
    rules = s3.get_bucket_encryption(Bucket=name)["ServerSideEncryptionConfiguration"]["Rules"]
    assert rules[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    assert s3.get_bucket_versioning(Bucket=name)["Status"] == "Enabled"
    # The TLS-only policy is put only on https endpoints (moto here is http): see the Stubber test.


def test_upload_keys_by_content_and_skips_what_is_there(endpoint: str, tmp_path: Path) -> None:
    deployer = deployer_for(endpoint)
    account = deployer.check_identity().account
    files = small_files(tmp_path)
    up = artifacts.upload(deployer, account, "mvp", files)
    s3 = clients(endpoint)["s3"]
    key = up.parameters["CodeS3Key"]
    assert key.endswith("/router.zip") and key.startswith("tinyllama/")
    body = s3.get_object(Bucket=up.bucket, Key=key)["Body"].read()
    assert body == files[0].path.read_bytes()
    assert up.template_url == f"{endpoint}/{up.bucket}/{deployer.upload(up.bucket, files[1:])['template']}"
    versions = s3.list_object_versions(Bucket=up.bucket, Prefix=key).get("Versions", [])
    artifacts.upload(deployer, account, "mvp", files)  # same bytes: nothing is sent again
    assert len(s3.list_object_versions(Bucket=up.bucket, Prefix=key).get("Versions", [])) == len(versions) == 1
    files[0].path.write_bytes(files[0].path.read_bytes() + b"\n")
    assert artifacts.upload(deployer, account, "mvp", files).parameters["CodeS3Key"] != key


def test_create_update_delete_a_stack(endpoint: str, tmp_path: Path) -> None:
    deployer = deployer_for(endpoint)
    account = deployer.check_identity().account
    name = f"tl-{uuid.uuid4().hex[:8]}"
    up = artifacts.upload(deployer, account, "mvp", small_files(tmp_path))
    params = {**up.parameters, "AlertEmail": "a@example.com", "SourceRepositoryUrl": "https://example.com/r"}

    review = deployer.create_change_set(name, up.template_url, params, {"app": "tinyllama"})
    assert review.change_type == "CREATE" and not review.change_set_id
    final = deployer.follow(deployer.execute(review))
    assert final.succeeded and final.status == "CREATE_COMPLETE" and final.progress == 1.0
    outputs = deployer.outputs(name)
    assert outputs["ApiUrl"] == "https://api.example.com/one"
    assert outputs["CodeKey"] == params["CodeS3Key"]
    s3 = clients(endpoint)["s3"]
    s3.head_bucket(Bucket=outputs["DataBucket"])

    review = deployer.create_change_set(name, up.template_url, {**params, "Suffix": "two"})
    assert review.change_type == "UPDATE"
    final = deployer.follow(deployer.execute(review))
    assert final.status == "UPDATE_COMPLETE"
    assert deployer.outputs(name)["ApiUrl"] == "https://api.example.com/two"
    ssm = boto3.client("ssm", region_name="us-east-1")
    assert ssm.get_parameter(Name=f"/tinyllama/{name}/suffix")["Parameter"]["Value"] == "two"

    s3.put_object(Bucket=outputs["DataBucket"], Key="history/1.json", Body=b"{}")
    plan = deployer.plan_delete(name)
    assert ("Remove", "DataBucket", "AWS::S3::Bucket") in {(r.action, r.logical_id, r.resource_type)
                                                          for r in plan.rows}
    assert deployer.empty_bucket(outputs["DataBucket"]) == 1
    final = deployer.follow(deployer.execute(plan))
    assert final.succeeded and final.status == "DELETE_COMPLETE"
    assert deployer.describe(name) is None
    with pytest.raises(DeployError, match="no stack named"):
        deployer.plan_delete(name)


def test_cli_refuses_missing_parameters(endpoint: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from desktop.cli import main

    files = small_files(tmp_path)
    assert main(["deploy", "--template", "mvp", "--template-file", str(files[1].path), "--router-zip",
                 str(files[0].path), "--direct", "--yes"]) == 2
    out = capsys.readouterr().out
    assert "AlertEmail" in out and "SourceRepositoryUrl" not in out  # no connection: no build project
    assert main(["deploy", "--template", "mvp", "--template-file", str(files[1].path), "--router-zip",
                 str(files[0].path), "--direct", "--yes", "-p", "AlertEmail=a@example.com",
                 "-p", "SourceConnectionArn=arn:aws:codeconnections:us-east-1:123456789012:connection/x"]) == 2
    assert "SourceRepositoryUrl" in capsys.readouterr().out


def test_cli_create_then_delete(endpoint: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                monkeypatch: pytest.MonkeyPatch) -> None:
    from desktop.cli import main

    files = small_files(tmp_path)
    name = f"tl-cli-{uuid.uuid4().hex[:6]}"
    base = ["deploy", "--stack-name", name, "--template", "mvp", "--template-file", str(files[1].path),
            "--router-zip", str(files[0].path), "--direct", "--poll-interval", "0"]
    assert main([*base, "-p", "AlertEmail=a@example.com", "-p", "SourceRepositoryUrl=https://example.com/r",
                 "--yes"]) == 0
    out = capsys.readouterr().out
    assert "Deploying as arn:aws:" in out and f"{name}: CREATE_COMPLETE" in out
    assert "ApiUrl = https://api.example.com/one" in out
    assert "tinyllama-bootstrap-" in out

    # An update changes what is given and keeps the rest (AlertEmail is not given again).
    assert main([*base, "-p", "Suffix=two", "--yes"]) == 0
    out = capsys.readouterr().out
    assert f"{name}: UPDATE_COMPLETE" in out and "ApiUrl = https://api.example.com/two" in out
    deployed = {p["ParameterKey"]: p["ParameterValue"] for p in boto3.client(
        "cloudformation", region_name="us-east-1").describe_stacks(StackName=name)["Stacks"][0]["Parameters"]}
    assert deployed["AlertEmail"] == "a@example.com" and deployed["Suffix"] == "two"

    # Declining the delete changes nothing.
    monkeypatch.setattr("sys.stdin", io.StringIO("n\n"))
    assert main([*base, "--delete"]) == 3
    assert "Nothing was deleted" in capsys.readouterr().out
    assert boto3.client("cloudformation", region_name="us-east-1").describe_stacks(StackName=name)["Stacks"]

    monkeypatch.setattr("sys.stdin", io.StringIO("yes\n"))
    assert main([*base, "--delete", "--empty-data-bucket"]) == 0
    out = capsys.readouterr().out
    assert "Remove" in out and "DataBucket" in out and f"{name}: DELETE_COMPLETE" in out


def test_cli_shows_the_change_set_and_a_no_discards_it(endpoint: str, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    """Identity and upload on moto, CloudFormation on a Stubber (moto's change sets are broken)."""
    from botocore.stub import Stubber

    from desktop import deploy_cli
    from tests.fixtures import cfn_events as ev

    files = small_files(tmp_path)
    cfn = boto3.client("cloudformation", region_name="us-east-1")
    args = deploy_cli.add_parser(argparse.ArgumentParser().add_subparsers()).parse_args(
        ["--stack-name", ev.STACK, "--template", "mvp", "--template-file", str(files[1].path), "--router-zip",
         str(files[0].path), "-p", "AlertEmail=a@example.com", "-p", "SourceRepositoryUrl=https://example.com/r"])
    with Stubber(cfn) as stubber:
        for _ in range(2):  # the CLI's look for current values, then the change set's create-or-update
            stubber.add_client_error("describe_stacks", "ValidationError", "Stack with id tinyllama does not exist")
        stubber.add_response("create_change_set", {"Id": "arn:cs/9", "StackId": ev.STACK_ID})
        for _ in range(2):  # the waiter's answer, then the paginator's page
            stubber.add_response("describe_change_set", {"Status": "CREATE_COMPLETE", "Changes": ev.CHANGES})
        stubber.add_response("delete_change_set", {}, {"ChangeSetName": "arn:cs/9", "StackName": ev.STACK})
        stubber.add_response("delete_stack", {}, {"StackName": ev.STACK_ID})

        def factory(**kwargs: object) -> StackDeployer:
            c = clients(endpoint)
            return StackDeployer(cfn, c["s3"], c["sts"], region="us-east-1", wait=lambda _s: None)

        code = deploy_cli.run(args, stdin=io.StringIO("n\n"), deployer_factory=factory)
        stubber.assert_no_pending_responses()
    out = capsys.readouterr().out
    assert code == 3 and "Nothing was changed." in out
    lines = out.splitlines()
    assert any(line.split()[:2] == ["Modify", "RedisCluster"] and line.endswith("REPLACED") for line in lines)
    assert any(line.split()[:2] == ["Modify", "WorkerInstance"] and line.endswith("may be replaced") for line in lines)
    assert any(line.split()[:2] == ["Remove", "Dashboard"] for line in lines)
