"""What would fail or misbehave on a real AWS account although cfn-lint and checkov pass.

moto skips CodeBuild, CloudFront, alarms and Image Builder, so these read the templates
the way CloudFormation would (conditions and Fn::If resolved for given parameters) and
assert the rule each AWS page states; the page is named next to each rule in the
template. What only an account can show is listed in infra/NOTES.md, "Not verified
without an AWS account".
"""

from __future__ import annotations

import re
import subprocess
from typing import Any

import pytest
import yaml

from tests.infra.conftest import INFRA, load_template

MVP = load_template(INFRA / "mvp.yaml")
STACK = load_template(INFRA / "stack.yaml")
PIPELINE = load_template(INFRA / "pipeline.yaml")
INSTALL = (INFRA / "image" / "install_worker.sh").read_text()
CONNECTION = "arn:aws:codeconnections:us-east-1:123456789012:connection/0123abcd-0123-4567-89ab-0123456789ab"


def resolved(template: dict[str, Any], given: dict[str, str]) -> dict[str, Any]:
    """The resources CloudFormation creates for these parameters, with Fn::If resolved
    (AWS::NoValue entries removed) and Refs to parameters replaced by their values."""
    values = {k: str(v.get("Default", "")) for k, v in template.get("Parameters", {}).items()} | given

    def value(node: Any) -> Any:
        if isinstance(node, dict) and set(node) == {"Ref"} and node["Ref"] in values:
            return values[node["Ref"]]
        return node

    def cond(node: Any) -> bool:
        if isinstance(node, dict):
            ((fn, args),) = node.items()
            if fn == "Condition":
                return cond(template["Conditions"][args])
            if fn == "Fn::Equals":
                return bool(value(args[0]) == value(args[1]))
            if fn == "Fn::Not":
                return not cond(args[0])
            if fn == "Fn::And":
                return all(cond(a) for a in args)
            if fn == "Fn::Or":
                return any(cond(a) for a in args)
        raise AssertionError(f"condition not understood: {node}")

    novalue = object()

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            if set(node) == {"Fn::If"}:
                name, yes, no = node["Fn::If"]
                return walk(yes if cond(template["Conditions"][name]) else no)
            if node == {"Ref": "AWS::NoValue"}:
                return novalue
            out = {k: walk(v) for k, v in node.items()}
            out = {k: v for k, v in out.items() if v is not novalue}
            return value(out)
        if isinstance(node, list):
            return [v for v in (walk(x) for x in node) if v is not novalue]
        return node

    return {name: walk(r) for name, r in template["Resources"].items()
            if "Condition" not in r or cond(template["Conditions"][r["Condition"]])}


def statements(role: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for p in role["Properties"].get("Policies", []) for s in p["PolicyDocument"]["Statement"]]


def actions(statement: dict[str, Any]) -> list[str]:
    action = statement["Action"]
    return [action] if isinstance(action, str) else action


# ---------------------------------------------------------------- 1. MVP build project

def test_mvp_without_a_connection_creates_no_build_project() -> None:
    """A GITHUB-source project in an account with no stored GitHub credentials fails
    CreateProject, and with it the stack: with no connection there is none to fail."""
    resources = resolved(MVP, {})
    assert not {r["Type"] for r in resources.values()} & {"AWS::CodeBuild::Project"}
    assert "BuildRole" not in resources
    assert MVP["Parameters"]["SourceConnectionArn"]["Default"] == ""
    assert MVP["Parameters"]["SourceRepositoryUrl"]["Default"] == ""
    output = MVP["Outputs"]["BuildProject"]
    assert output["Value"]["Fn::If"][2] == "none" and "SourceConnectionArn" in output["Description"]


def test_mvp_build_project_clones_through_the_connection_it_may_use() -> None:
    resources = resolved(MVP, {"SourceConnectionArn": CONNECTION,
                               "SourceRepositoryUrl": "https://github.com/example/tinyllama"})
    source = resources["RouterBuild"]["Properties"]["Source"]
    assert source["Type"] == "GITHUB"
    assert source["Auth"] == {"Type": "CODECONNECTIONS", "Resource": CONNECTION}
    (grant,) = [s for s in statements(resources["BuildRole"]) if any("onnection" in a for a in actions(s))]
    assert grant["Resource"] == CONNECTION  # that connection only, never "*"
    assert {"codeconnections:GetConnectionToken", "codeconnections:UseConnection",
            "codestar-connections:UseConnection"} <= set(actions(grant))
    pattern = MVP["Parameters"]["SourceConnectionArn"]["AllowedPattern"]
    assert re.fullmatch(pattern, CONNECTION) and re.fullmatch(pattern, "")
    assert not re.fullmatch(pattern, "arn:aws:iam::123456789012:role/x")


# ---------------------------------------------------------------- 2. CloudFront

# origin request policy -> forwards Host; from the CloudFront developer guide's table of
# managed policies. Authorization must come through the cache policy's key.
ORIGIN_REQUEST_POLICIES = {"216adef6-5c7f-47e4-b989-5492eafa07d3": True,  # AllViewer
                           "b689b0a8-53d0-40ab-baf2-68738e2966ac": False}  # AllViewerExceptHostHeader


def api_routes() -> list[tuple[str, str]]:
    spec = yaml.safe_load((INFRA / "openapi.yaml").read_text())
    return [(method.upper(), path) for path, item in spec["paths"].items() for method in item
            if method in {"get", "post", "put", "patch", "delete"}]


def behaviour_for(config: dict[str, Any], path: str) -> dict[str, Any]:
    """The cache behaviour CloudFront picks for `path`: the first matching PathPattern."""
    for behaviour in config.get("CacheBehaviors", []):
        regex = "^" + re.escape(behaviour["PathPattern"]).replace(r"\*", ".*").replace(r"\?", ".") + "$"
        if re.match(regex, path):
            return behaviour
    return config["DefaultCacheBehavior"]


def test_api_routes_are_what_the_test_walks() -> None:
    assert ("GET", "/prompts/{id}") in api_routes() and ("GET", "/status") in api_routes()


@pytest.mark.parametrize(("method", "path"), api_routes())
def test_cloudfront_forwards_authorization_and_caches_nothing(method: str, path: str) -> None:
    config = resolved(STACK, {"EnableCloudFront": "true"})["CloudFrontDistribution"]["Properties"][
        "DistributionConfig"]
    behaviour = behaviour_for(config, path.replace("{id}", "0" * 32))
    assert method in behaviour["AllowedMethods"]
    resources = resolved(STACK, {"EnableCloudFront": "true"})
    (name,) = behaviour["CachePolicyId"].values()  # the stack's own policy (a Ref)
    policy = resources[name]["Properties"]["CachePolicyConfig"]
    key = policy["ParametersInCacheKeyAndForwardedToOrigin"]
    assert key["HeadersConfig"] == {"HeaderBehavior": "whitelist", "Headers": ["Authorization"]}, (
        f"{method} {path} would reach the JWT authorizer without Authorization (401)")
    assert (policy["MinTTL"], policy["DefaultTTL"]) == (0, 0) and policy["MaxTTL"] <= 1, "never cached"
    assert behaviour["OriginRequestPolicyId"] in ORIGIN_REQUEST_POLICIES
    forwards_host = ORIGIN_REQUEST_POLICIES[behaviour["OriginRequestPolicyId"]]
    assert not forwards_host, "API Gateway answers 403 to CloudFront's Host"
    assert "ForwardedValues" not in behaviour  # legacy settings cannot be mixed with policies


# ---------------------------------------------------------------- 3. alarm's service-linked role

def test_deploy_role_may_create_only_the_alarm_actions_service_linked_role() -> None:
    role = PIPELINE["Resources"]["DeployRole"]
    granted = [s for s in statements(role) if "iam:CreateServiceLinkedRole" in actions(s)]
    assert "iam:*" not in {a for s in statements(role) for a in actions(s)}
    for statement in granted:
        assert actions(statement) == ["iam:CreateServiceLinkedRole"] and statement["Effect"] == "Allow"
        names = statement["Condition"]["StringEquals"]["iam:AWSServiceName"]
        assert names and "*" not in str(names)
    (alarm,) = [s for s in granted if s["Condition"]["StringEquals"]["iam:AWSServiceName"] == "events.amazonaws.com"]
    resource = alarm["Resource"]["Fn::Sub"]
    assert resource.endswith(":role/aws-service-role/events.amazonaws.com/AWSServiceRoleForCloudWatchEvents")
    # and the stack really has an alarm whose action needs that role
    (alarm_actions,) = [r["Properties"]["AlarmActions"] for r in STACK["Resources"].values()
                        if r["Type"] == "AWS::CloudWatch::Alarm" and "ec2:stop" in str(r["Properties"].get(
                            "AlarmActions"))]
    assert any(":automate:" in str(a) for a in alarm_actions)


# ---------------------------------------------------------------- 4. Image Builder lifecycle

def test_lifecycle_keeps_the_newest_images_and_deletes_the_rest_with_amis_and_snapshots() -> None:
    resources = PIPELINE["Resources"]
    (name,) = [n for n, r in resources.items() if r["Type"] == "AWS::ImageBuilder::LifecyclePolicy"]
    props = resources[name]["Properties"]
    assert props["ResourceType"] == "AMI_IMAGE" and props["Status"] == "ENABLED"
    (detail,) = props["PolicyDetails"]
    assert detail["Action"] == {"Type": "DELETE", "IncludeResources": {"Amis": True, "Snapshots": True}}
    assert detail["Filter"] == {"Type": "COUNT", "Value": {"Ref": "KeepImages"}}
    keep = PIPELINE["Parameters"]["KeepImages"]
    # one: the deployed image (a rollback re-bakes); the cheap profile's $8 prices that one
    assert (keep["Type"], keep["Default"]) == ("Number", 1) and keep["MinValue"] >= 1
    # it selects the recipe the pipeline bakes, at the version it bakes (bump both together)
    (recipe,) = props["ResourceSelection"]["Recipes"]
    assert recipe["Name"] == {"Fn::GetAtt": ["WorkerRecipe", "Name"]}
    assert recipe["SemanticVersion"] == resources["WorkerRecipe"]["Properties"]["Version"]
    assert resources["WorkerImagePipeline"]["Properties"]["ImageRecipeArn"] == {"Ref": "WorkerRecipe"}


def test_lifecycle_role_is_least_privilege() -> None:
    props = PIPELINE["Resources"]["WorkerImageLifecycle"]["Properties"]
    role_name = props["ExecutionRole"]["Fn::GetAtt"][0]
    role = PIPELINE["Resources"][role_name]
    (trust,) = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "imagebuilder.amazonaws.com"}
    assert "ManagedPolicyArns" not in role["Properties"]
    for statement in statements(role):
        assert statement["Effect"] == "Allow"
        assert not any(a.endswith(":*") or a == "*" for a in actions(statement))
        if statement["Resource"] == "*":  # only calls that have no resource-level permissions
            assert set(actions(statement)) <= {"ec2:DescribeImages", "tag:GetResources"}
        if any(a in {"ec2:DeregisterImage", "ec2:DeleteSnapshot"} for a in actions(statement)):
            # only what Image Builder created, never any AMI or snapshot of the account
            assert statement["Condition"] == {"StringEquals": {"aws:ResourceTag/CreatedBy": "EC2 Image Builder"}}
    granted = {a for s in statements(role) for a in actions(s)}
    assert {"ec2:DeregisterImage", "ec2:DeleteSnapshot", "imagebuilder:DeleteImage"} <= granted
    assert not granted & {"ec2:TerminateInstances", "ecr:BatchDeleteImage", "ec2:CreateTags"}


# ---------------------------------------------------------------- 5. the worker image

def test_worker_install_pins_vllm_and_keeps_pips_cache_off_the_volume() -> None:
    (default,) = re.findall(r"vllm_spec=\$\{VLLM_SPEC:-([^}]+)\}", INSTALL)
    assert re.fullmatch(r"vllm==\d+\.\d+\.\d+(\.post\d+)?", default), default
    assert default == PIPELINE["Parameters"]["VllmSpec"]["Default"]  # the bake and a first boot agree
    pip_lines = [line for line in INSTALL.splitlines() if re.search(r"/pip\" install", line)]
    assert pip_lines and all("--no-cache-dir" in line for line in pip_lines)
    assert "export PIP_NO_CACHE_DIR=1" in INSTALL  # pip run by anything else the script starts


def test_every_apt_call_waits_for_the_dpkg_lock() -> None:
    data = PIPELINE["Resources"]["WorkerComponent"]["Properties"]["Data"]["Fn::Sub"]
    for name, script in (("install_worker.sh", INSTALL), ("component", data)):
        assert "apt_get() { apt-get -o DPkg::Lock::Timeout=600 \"$@\"; }" in script, name
        bare = [line for line in script.splitlines()
                if re.search(r"(^|[\s;&|(])(apt-get|apt|dpkg) ", line.split("#")[0]) and "apt_get()" not in line]
        assert not bare, f"{name}: {bare}"


def test_image_component_installs_the_pinned_vllm_and_tests_the_worker_command() -> None:
    props = PIPELINE["Resources"]["WorkerComponent"]["Properties"]
    data = props["Data"]["Fn::Sub"]
    assert "VLLM_SPEC='{{ VllmSpec }}' bash /tmp/tinyllama-image/install_worker.sh" in data
    assert "/opt/tinyllama/venv/bin/tinyllama-worker --help" in data
    params = {p["Name"]: p["Value"] for p in
              PIPELINE["Resources"]["WorkerRecipe"]["Properties"]["Components"][0]["Parameters"]}
    assert params["VllmSpec"] == [{"Ref": "VllmSpec"}]


# ---------------------------------------------------------------- 6. the public MVP echo

def test_mvp_echo_is_throttled_and_stores_nothing_unless_asked() -> None:
    settings = MVP["Resources"]["ApiStage"]["Properties"]["DefaultRouteSettings"]
    assert (settings["ThrottlingRateLimit"], settings["ThrottlingBurstLimit"]) == (1, 5)
    assert MVP["Parameters"]["StorePrompts"]["Default"] == "false"
    off = resolved(MVP, {})
    assert "DATA_BUCKET" not in off["RouterFunction"]["Properties"]["Environment"]["Variables"]
    assert not [s for s in statements(off["LambdaRole"]) if any(a.startswith("s3:") for a in actions(s))]
    on = resolved(MVP, {"StorePrompts": "true"})
    assert on["RouterFunction"]["Properties"]["Environment"]["Variables"]["DATA_BUCKET"] == {"Ref": "DataBucket"}
    (put,) = [s for s in statements(on["LambdaRole"]) if any(a.startswith("s3:") for a in actions(s))]
    assert actions(put) == ["s3:PutObject"] and put["Resource"]["Fn::Sub"].endswith("/prompts/*")


def test_full_stack_echo_is_throttled_too() -> None:
    settings = STACK["Resources"]["ApiStage"]["Properties"]["DefaultRouteSettings"]
    assert settings["ThrottlingRateLimit"] <= 20 and settings["ThrottlingBurstLimit"] <= 50


def test_the_bake_measures_what_the_image_uses_and_leaves_room() -> None:
    # The stack's RootVolumeGiB default rests on this: the image's used GiB, printed by the
    # bake's test phase, which fails when less than 3 GiB would stay free.
    data = PIPELINE["Resources"]["WorkerComponent"]["Properties"]["Data"]
    component = data["Fn::Sub"] if isinstance(data, dict) else data
    (line,) = re.findall(r"- (df .*)", component if isinstance(component, str) else component[0])
    check = line.split("| tee /dev/stderr | ", 1)[1]
    for used, size, ok in (("16G", "30G", True), ("28G", "30G", False)):
        sample = f" Used 1G-blocks\n  {used}      {size}\n"
        assert (subprocess.run(["bash", "-c", check], input=sample, text=True).returncode == 0) is ok
    assert PIPELINE["Parameters"]["ImageVolumeGiB"]["Default"] == STACK["Parameters"]["RootVolumeGiB"]["Default"]
