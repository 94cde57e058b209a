"""Deploy what moto's CloudFormation can create into moto's server and read it back.

moto has no model for many types here (API Gateway v2, Cognito, ElastiCache, Secrets
Manager secrets, alarms, budgets, CodeBuild, CloudFront). It skips them when creating a
stack but fails on a GetAtt to one of them, so `for_moto` drops those resources and puts
a visible placeholder where they are referenced; everything else deploys as written.
"""

from __future__ import annotations

import ast
import io
import json
import urllib.parse
import uuid
import zipfile
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from tests.fixtures.aws import aws_env, moto_server  # noqa: F401
from tests.fixtures.moto_templates import PLACEHOLDER, for_moto
from tests.infra.conftest import INFRA, load_template

# What must survive the filter: the parts the issue names (bucket, roles, function, VPC,
# instance, log groups, dashboard, parameters) are really created.
MUST_DEPLOY = {
    "mvp.yaml": {"DataBucket", "LambdaRole", "RouterFunction", "RouterLogGroup", "ApiInvokePermission"},
    "stack.yaml": {"Vpc", "PrivateSubnetA", "PrivateSubnetB", "DataBucket", "RouterRole", "RouterFunction",
                   "WorkerRole", "WorkerInstanceProfile", "WorkerLaunchTemplate", "WorkerInstance",
                   "RouterLogGroup", "WorkerLogGroup", "Dashboard", "S3GatewayEndpoint", "PublicSubnetA",
                   "PublicSubnetB", "InternetGateway", "PublicDefaultRoute", "RouterSecurityGroup",
                   "WorkerSecurityGroup", "AlertTopic"},
}


@pytest.fixture
def aws(aws_env: str) -> Iterator[dict[str, Any]]:  # noqa: F811
    """boto3 clients on moto, and a code bucket holding a router zip. MVP stacks are
    deleted after the test: the template names its role, bucket and log groups, and
    moto's server is shared by the session."""
    clients = {name: boto3.client(name, endpoint_url=aws_env) for name in
               ("cloudformation", "s3", "ec2", "ssm", "lambda", "iam", "logs", "cloudwatch")}
    bucket = f"code-{uuid.uuid4().hex[:12]}"
    clients["s3"].create_bucket(Bucket=bucket)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        archive.writestr("backend/entrypoints/router.py", "def handler(event, context):\n    return {}\n")
    clients["s3"].put_object(Bucket=bucket, Key="tinyllama/router.zip", Body=buf.getvalue())
    stacks: list[str] = []
    yield {**clients, "code_bucket": bucket, "stacks": stacks}
    for name in stacks:
        clients["cloudformation"].delete_stack(StackName=name)


def role_policy(aws: dict[str, Any], role: str, name: str) -> dict[str, Any]:
    doc = aws["iam"].get_role_policy(RoleName=role, PolicyName=name)["PolicyDocument"]
    if not isinstance(doc, dict):
        # moto's CloudFormation stores an inline policy as Python's repr of the dict
        doc = ast.literal_eval(urllib.parse.unquote(doc))
    # moto leaves an Fn::If's AWS::NoValue in a list as null; CloudFormation drops it
    return {**doc, "Statement": [s for s in doc["Statement"] if s is not None]}


def deploy(aws: dict[str, Any], name: str, parameters: dict[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    template, dropped = for_moto(load_template(INFRA / name), parameters)
    for key, value in parameters.items():
        # moto resolves an SSM-typed parameter's Default even when a value is passed, and
        # public /aws/service/... paths cannot be created in it.
        if template["Parameters"][key]["Type"].startswith("AWS::SSM::Parameter::Value"):
            template["Parameters"][key]["Default"] = value
    assert MUST_DEPLOY[name] <= set(template["Resources"]), MUST_DEPLOY[name] - set(template["Resources"])
    stack_name = f"t{uuid.uuid4().hex[:10]}"
    cf = aws["cloudformation"]
    if name == "mvp.yaml":  # deployed twice; moto cannot delete the full stack's VPC
        aws["stacks"].append(stack_name)
    cf.create_stack(StackName=stack_name, TemplateBody=json.dumps(template),
                    Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()],
                    Capabilities=["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM"])
    stack = cf.describe_stacks(StackName=stack_name)["Stacks"][0]
    assert stack["StackStatus"] == "CREATE_COMPLETE", stack.get("StackStatusReason")
    created = {r["LogicalResourceId"]: r["PhysicalResourceId"]
               for r in cf.list_stack_resources(StackName=stack_name)["StackResourceSummaries"]}
    assert MUST_DEPLOY[name] <= created.keys(), MUST_DEPLOY[name] - created.keys()
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
    return {"created": created, "dropped": dropped, "name": stack_name}, outputs


def test_mvp_stack(aws: dict[str, Any]) -> None:
    """The defaults: no connection (so no build project) and no prompt log."""
    info, outputs = deploy(aws, "mvp.yaml", {"CodeS3Bucket": aws["code_bucket"], "AlertEmail": "me@example.com"})
    assert outputs["Region"] == "us-east-1"
    assert outputs["DataBucket"] == "tinyllama-data-123456789012"
    # moto's bucket model applies encryption and tags only; versioning and the public
    # access block are held by checkov (CKV_AWS_21, CKV_AWS_53..56) instead.
    s3 = aws["s3"]
    rule = s3.get_bucket_encryption(Bucket=outputs["DataBucket"])["ServerSideEncryptionConfiguration"]["Rules"][0]
    assert rule["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms"

    fn = aws["lambda"].get_function(FunctionName=outputs["FunctionName"])["Configuration"]
    assert (fn["FunctionName"], fn["Handler"], fn["Runtime"]) == (
        "tinyllama-router", "backend.entrypoints.router.handler", "python3.12")
    assert (fn["MemorySize"], fn["Timeout"]) == (512, 30)
    env = fn["Environment"]["Variables"]
    assert "DATA_BUCKET" not in env  # StorePrompts defaults to off: POST / is public
    assert fn["Role"].endswith(":role/tinyllama-lambda-role")

    policy = role_policy(aws, "tinyllama-lambda-role", "router")
    actions = {a for s in policy["Statement"] for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])}
    assert actions == {"logs:CreateLogStream", "logs:PutLogEvents", "secretsmanager:GetSecretValue"}
    assert "BuildRole" not in info["created"] and outputs["BuildProject"] == "none"
    groups = aws["logs"].describe_log_groups(logGroupNamePrefix="/aws/lambda/tinyllama-router")["logGroups"]
    assert groups[0]["retentionInDays"] == 30
    assert "OpenAiSecret" in info["dropped"] and "HttpApi" in info["dropped"]


def test_mvp_stack_with_a_connection_and_the_prompt_log(aws: dict[str, Any]) -> None:
    connection = "arn:aws:codeconnections:us-east-1:123456789012:connection/0123abcd-0123-4567-89ab-0123456789ab"
    info, outputs = deploy(aws, "mvp.yaml", {
        "CodeS3Bucket": aws["code_bucket"], "AlertEmail": "me@example.com", "StorePrompts": "true",
        "SourceConnectionArn": connection, "SourceRepositoryUrl": "https://github.com/example/tinyllama"})
    fn = aws["lambda"].get_function(FunctionName=outputs["FunctionName"])["Configuration"]
    assert fn["Environment"]["Variables"]["DATA_BUCKET"] == outputs["DataBucket"]
    router = role_policy(aws, "tinyllama-lambda-role", "router")
    (put,) = [s for s in router["Statement"] if s["Action"] == "s3:PutObject"]
    assert put["Resource"] == f"arn:aws:s3:::{outputs['DataBucket']}/prompts/*"
    # the build role exists now, and may use that connection only
    role = info["created"]["BuildRole"]
    build = role_policy(aws, role, "ship-router")
    (grant,) = [s for s in build["Statement"] if "codeconnections:GetConnectionToken" in s["Action"]]
    assert grant["Resource"] == connection
    assert "RouterBuild" in info["dropped"]  # moto has no CodeBuild model


def test_full_stack(aws: dict[str, Any]) -> None:
    ami = aws["ec2"].describe_images()["Images"][0]["ImageId"]
    aws["ssm"].put_parameter(Name="/test/worker-ami", Value=ami, Type="String", DataType="aws:ec2:image",
                             Overwrite=True)
    info, outputs = deploy(aws, "stack.yaml", {
        "CodeS3Bucket": aws["code_bucket"], "AlertEmail": "me@example.com", "ImageParameter": "/test/worker-ami",
        "RootVolumeGiB": "60", "WorkerSubnet": "second", "CreateDashboard": "true",
    })
    assert set(outputs) == {"ApiUrl", "Region", "UserPoolId", "UserPoolClientId", "InstanceId", "DataBucket",
                            "BudgetName", "WorkerLogGroup"}
    assert outputs["Region"] == "us-east-1"
    ec2 = aws["ec2"]

    # the GPU instance: the launch template's type and image, in a public subnet (its public
    # address is the launch template's, which moto does not apply: checked below), tagged,
    # no key pair
    (reservation,) = ec2.describe_instances(InstanceIds=[outputs["InstanceId"]])["Reservations"]
    instance = reservation["Instances"][0]
    assert instance["InstanceType"] == "g4dn.xlarge" and instance["ImageId"] == ami
    assert "KeyName" not in instance
    tags = {t["Key"]: t["Value"] for t in instance["Tags"]}
    assert tags["tinyllama:role"] == "gpu-worker" and tags["tinyllama:stack"] == info["name"]
    vpc_id = info["created"]["Vpc"]
    assert instance["VpcId"] == vpc_id and instance["SubnetId"] == info["created"]["PublicSubnetB"]
    lt = ec2.describe_launch_template_versions(LaunchTemplateId=info["created"]["WorkerLaunchTemplate"])
    data = lt["LaunchTemplateVersions"][0]["LaunchTemplateData"]
    assert data["MetadataOptions"]["HttpTokens"] == "required"
    ebs = data["BlockDeviceMappings"][0]["Ebs"]
    assert (ebs["VolumeType"], int(ebs["VolumeSize"]), ebs["Encrypted"]) == ("gp3", 60, True)
    assert data["NetworkInterfaces"][0]["AssociatePublicIpAddress"] is True

    # the worker's security group lets nothing in
    sg = ec2.describe_security_groups(GroupIds=[info["created"]["WorkerSecurityGroup"]])["SecurityGroups"][0]
    assert sg["IpPermissions"] == []

    # the router: in the VPC, pointed at this stack's instance
    fn = aws["lambda"].get_function(FunctionName="tinyllama-router-v2")["Configuration"]
    assert fn["Handler"] == "backend.entrypoints.router.handler"
    env = fn["Environment"]["Variables"]
    assert env["INSTANCE_ID"] == outputs["InstanceId"]
    assert "DATA_BUCKET" not in env  # its `POST /` is public: no prompt log in S3 here
    assert env["COMPUTE_KIND"] == "ec2" and env["FALLBACK_INSTANCE_TYPE"] == "g5.xlarge"
    assert env["GPU_PRICE_PER_HOUR_USD"] == "0.526"
    subnets = ec2.describe_subnets(SubnetIds=fn["VpcConfig"]["SubnetIds"])["Subnets"]
    assert {s["VpcId"] for s in subnets} == {vpc_id} and len({s["AvailabilityZone"] for s in subnets}) == 2

    # its role may start exactly this instance
    role = fn["Role"].rsplit("/", 1)[1]
    policy = role_policy(aws, role, "router")
    (wake,) = [s for s in policy["Statement"] if "ec2:StartInstances" in s["Action"]]
    assert wake["Resource"] == f"arn:aws:ec2:us-east-1:123456789012:instance/{outputs['InstanceId']}"

    # logs kept for the retention asked, and the dashboard shows this instance
    group = aws["logs"].describe_log_groups(logGroupNamePrefix=outputs["WorkerLogGroup"])["logGroups"][0]
    assert group["retentionInDays"] == 30
    body = json.loads(aws["cloudwatch"].get_dashboard(DashboardName=f"{info['name']}-tinyllama")["DashboardBody"])
    assert outputs["InstanceId"] in json.dumps(body)
    assert {w["properties"]["title"] for w in body["widgets"]} >= {
        "GPU utilisation (%)", "Queue depth", "Latency (ms)", "Wake time (s)"}

    # the default egress is IPv6 (EgressMode=ipv6): no NAT of any kind, and no IPv4 way out
    # of the private subnets; the public ones route to the internet gateway
    assert not {"NatGateway", "NatGatewayAddress", "PrivateRouteViaNatGateway"} & info["created"].keys()
    in_vpc = {r["InstanceId"] for res in ec2.describe_instances(Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])[
        "Reservations"] for r in res["Instances"]}
    assert in_vpc == {outputs["InstanceId"], info["created"]["RedisInstance"]}  # the GPU and Redis (the default)
    tables = {t["RouteTableId"]: t for t in ec2.describe_route_tables(
        Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])["RouteTables"]}
    private = tables[info["created"]["PrivateRouteTable"]]
    assert not [r for r in private["Routes"] if r.get("DestinationCidrBlock") == "0.0.0.0/0"]
    public = tables[info["created"]["PublicRouteTable"]]
    assert [r["GatewayId"] for r in public["Routes"] if r.get("DestinationCidrBlock") == "0.0.0.0/0"] == [
        info["created"]["InternetGateway"]]
    # moto has no model for the IPv6 half (the VPC's Amazon /56, the egress-only gateway)
    # and creates IPv6 routes without their destination, so for_moto leaves those out and
    # says so; tests/infra/test_network.py checks them in the template.
    assert {"VpcIpv6Block", "EgressOnlyInternetGateway", "PrivateIpv6Route", "PublicIpv6Route"} <= info["dropped"]

    # what moto could not build is named, not silently missing
    assert {"RedisReplicationGroup", "UserPool", "HttpApi", "Budget", "IdleStopAlarm"} <= info["dropped"]
    assert outputs["UserPoolId"].startswith(PLACEHOLDER)


def test_full_stack_with_redis_on_an_instance(aws: dict[str, Any]) -> None:
    """RedisMode=instance (the cheap profile): moto runs the instance (not its user data,
    which tests/integration/test_redis_bootstrap.py runs for real) and wires it in."""
    # The full stack names its function and log group, and moto cannot delete a full stack
    # (test_full_stack's stays in this session's moto): make room for a second one, before
    # and after, whichever runs first.
    def make_room() -> None:
        for call, kwargs in ((aws["lambda"].delete_function, {"FunctionName": "tinyllama-router-v2"}),
                             (aws["logs"].delete_log_group, {"logGroupName": "/aws/lambda/tinyllama-router-v2"})):
            try:
                call(**kwargs)
            except (aws["lambda"].exceptions.ResourceNotFoundException,
                    aws["logs"].exceptions.ResourceNotFoundException):
                pass

    make_room()
    try:
        check_the_redis_instance_stack(aws)
    finally:
        make_room()


def check_the_redis_instance_stack(aws: dict[str, Any]) -> None:
    import base64

    ami = aws["ec2"].describe_images()["Images"][0]["ImageId"]
    aws["ssm"].put_parameter(Name="/test/worker-ami", Value=ami, Type="String", DataType="aws:ec2:image",
                             Overwrite=True)
    info, _ = deploy(aws, "stack.yaml", {
        "CodeS3Bucket": aws["code_bucket"], "AlertEmail": "me@example.com", "ImageParameter": "/test/worker-ami",
        "RedisMode": "instance", "CreateDashboard": "true",
    })
    created, ec2 = info["created"], aws["ec2"]
    assert {"RedisInstance", "RedisInstanceRole", "RedisInstanceProfile",
            "RedisInstanceSecurityGroup"} <= created.keys()
    assert not {"RedisReplicationGroup", "ServerlessValkey"} & created.keys()

    (reservation,) = ec2.describe_instances(InstanceIds=[created["RedisInstance"]])["Reservations"]
    box = reservation["Instances"][0]
    assert box["InstanceType"] == "t4g.nano" and "KeyName" not in box and "PublicIpAddress" not in box
    assert box["SubnetId"] == created["PrivateSubnetA"]
    assert {g["GroupId"] for g in box["SecurityGroups"]} == {created["RedisSecurityGroup"],
                                                             created["RedisInstanceSecurityGroup"]}
    assert {t["Key"]: t["Value"] for t in box["Tags"]}["tinyllama:role"] == "redis"
    user_data = ec2.describe_instance_attribute(InstanceId=box["InstanceId"], Attribute="userData")
    script = base64.b64decode(user_data["UserData"]["Value"]).decode()
    assert script.startswith("#!/bin/bash\nexport TL_REDIS_SECRET_ID=")
    assert (INFRA / "redis" / "bootstrap_redis.sh").read_text().split("\n", 1)[1] in script

    # Only the router's and the worker's security groups reach it, on the Redis port.
    sg = ec2.describe_security_groups(GroupIds=[created["RedisSecurityGroup"]])["SecurityGroups"][0]
    sources = {pair["GroupId"] for rule in sg["IpPermissions"] for pair in rule["UserIdGroupPairs"]}
    assert sources == {created["RouterSecurityGroup"], created["WorkerSecurityGroup"]}
    assert all(rule["FromPort"] == 6379 and not rule["IpRanges"] for rule in sg["IpPermissions"])

    # The router goes to that instance's private address, verifying the CA it publishes.
    env = aws["lambda"].get_function(FunctionName="tinyllama-router-v2")["Configuration"]["Environment"]["Variables"]
    assert (env["REDIS_HOST"], env["REDIS_PORT"]) == (box["PrivateIpAddress"], "6379")
    assert (env["REDIS_CLUSTER"], env["REDIS_CA_IN_SECRET"]) == ("0", "1")
    lt = ec2.describe_launch_template_versions(LaunchTemplateId=created["WorkerLaunchTemplate"])
    worker = base64.b64decode(lt["LaunchTemplateVersions"][0]["LaunchTemplateData"]["UserData"]).decode()
    assert f"\nREDIS_HOST={box['PrivateIpAddress']}\n" in worker and "\nREDIS_CA_IN_SECRET=1\n" in worker

    role = created["RedisInstanceRole"]
    (grant,) = role_policy(aws, role, "redis")["Statement"]
    assert set(grant["Action"]) == {"secretsmanager:GetSecretValue", "secretsmanager:PutSecretValue"}
    assert "RedisRecoveryAlarm" in info["dropped"]  # moto has no alarm model; test_redis_profiles checks it
