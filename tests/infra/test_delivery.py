"""The pieces around the templates: the pipeline deploys the stack it should with the
parameters it has, the image component and the scripts are well formed, and the worker
units start what the code provides."""

from __future__ import annotations

import json
import logging
import re
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helpers import load_script
from tests.infra.conftest import INFRA, ROOT, load_template

PIPELINE = load_template(INFRA / "pipeline.yaml")
STACK = load_template(INFRA / "stack.yaml")
INSTALL = INFRA / "image" / "install_worker.sh"


def sub_text(value: Any) -> str:
    """The text of a Fn::Sub (short or long form) with its ${...} left in place."""
    sub = value["Fn::Sub"]
    return sub if isinstance(sub, str) else sub[0]


def stage(name: str) -> dict[str, Any]:
    (found,) = [s for s in PIPELINE["Resources"]["Pipeline"]["Properties"]["Stages"] if s["Name"] == name]
    return found


def test_pipeline_runs_the_stages_in_order() -> None:
    stages = [s["Name"] for s in PIPELINE["Resources"]["Pipeline"]["Properties"]["Stages"]]
    assert stages == ["Source", "Test", "Image", "Approve", "Deploy"]


def test_deploy_gives_the_stack_parameters_it_has_and_all_it_requires() -> None:
    (action,) = stage("Deploy")["Actions"]
    config = action["Configuration"]
    assert config["TemplatePath"] == "Source::infra/stack.yaml"
    overrides = json.loads(re.sub(r"\$\{[A-Za-z:]+\}", "x", sub_text(config["ParameterOverrides"])))
    params = STACK["Parameters"]
    assert set(overrides) <= set(params), set(overrides) - set(params)
    required = {name for name, p in params.items() if "Default" not in p}
    assert required <= set(overrides), required - set(overrides)
    # the keys the Test stage exports are the ones it sets
    spec = yaml.safe_load((INFRA / "buildspec-test.yml").read_text())
    used = set(re.findall(r"#\{Test\.([A-Z_]+)\}", json.dumps(overrides)))
    assert used <= set(spec["env"]["exported-variables"])
    commands = "\n".join(spec["phases"]["post_build"]["commands"])
    for name in used:
        assert f"{name}=" in commands, name


def test_the_baked_ami_reaches_the_stack() -> None:
    distribution = PIPELINE["Resources"]["WorkerDistribution"]["Properties"]["Distributions"][0]
    (ssm,) = distribution["SsmParameterConfigurations"]
    (action,) = stage("Deploy")["Actions"]
    overrides = json.loads(re.sub(r"\$\{[A-Za-z:]+\}", "x", sub_text(action["Configuration"]["ParameterOverrides"])))
    assert overrides["ImageParameter"] == ssm["ParameterName"]
    assert STACK["Parameters"]["ImageParameter"]["Type"] == "AWS::SSM::Parameter::Value<AWS::EC2::Image::Id>"


@pytest.mark.parametrize("project", ["TestProject", "BakeProject"])
def test_codebuild_projects_use_buildspecs_that_exist(project: str) -> None:
    path = PIPELINE["Resources"][project]["Properties"]["Source"]["BuildSpec"]
    spec = yaml.safe_load((ROOT / path).read_text())
    assert spec["version"] == 0.2 and spec["phases"]


def test_image_component_is_a_valid_document() -> None:
    data = sub_text(PIPELINE["Resources"]["WorkerComponent"]["Properties"]["Data"])
    doc = yaml.safe_load(re.sub(r"\$\{[A-Za-z:]+\}", "placeholder", data))
    phases = {p["name"]: p for p in doc["phases"]}
    assert set(phases) <= {"build", "validate", "test"} and {"build", "test"} <= set(phases)
    actions = {step["action"] for p in doc["phases"] for step in p["steps"]}
    assert actions <= {"ExecuteBash", "Reboot", "S3Download"}
    commands = json.dumps(doc)
    assert "install_worker.sh" in commands and "nvidia-smi" in commands
    for step in (s for p in doc["phases"] for s in p["steps"] if s["action"] == "ExecuteBash"):
        for command in step["inputs"]["commands"]:
            subprocess.run(["bash", "-n"], input=command, text=True, check=True)


def scripts() -> dict[str, str]:
    worker = sub_text(STACK["Resources"]["WorkerLaunchTemplate"]["Properties"]["LaunchTemplateData"]["UserData"]
                      ["Fn::Base64"])
    return {"install_worker.sh": INSTALL.read_text(),
            "worker user data": re.sub(r"\$\{[A-Za-z:]+\}", "placeholder", worker)}


@pytest.mark.parametrize("name", ["install_worker.sh", "worker user data"])
def test_scripts_parse(name: str) -> None:
    script = scripts()[name]
    assert script.startswith("#!/bin/bash\n") and "set -euo pipefail" in script
    subprocess.run(["bash", "-n"], input=script, text=True, check=True)


def test_worker_units_start_vllm_and_the_worker_as_designed() -> None:
    text = INSTALL.read_text()
    # T4: no bf16 (--dtype half); no CUDA-graph capture on every wake (--enforce-eager).
    assert "vllm serve \\${MODEL} --host 127.0.0.1 --port 8000 --dtype half --enforce-eager\n" in text
    # the worker-only package's console script (no Qt on the GPU instance)
    (unit,) = re.findall(r"^ExecStart=\$prefix/venv/bin/(\S+)(.*)$", text.split("tinyllama-worker.service <<UNIT")[1],
                         flags=re.M)[:1]
    assert unit == ("tinyllama-worker", "")
    assert load_script("build_artifacts").WORKER_SCRIPT.startswith("tinyllama-worker = ")
    # user data calls what the install script creates; a baked image has the worker's script,
    # so the first boot must test for that one (or it reinstalls everything for 10–15 min).
    user_data = scripts()["worker user data"]
    assert "if [ ! -x /opt/tinyllama/venv/bin/tinyllama-worker ]; then" in user_data
    assert "/opt/tinyllama/configure-cloudwatch.sh" in user_data and '"$prefix/configure-cloudwatch.sh"' in text
    for unit in ("vllm.service", "tinyllama-worker.service"):
        assert f"/etc/systemd/system/{unit}" in text and unit in user_data


def test_agent_config_is_valid_json_and_feeds_the_dashboard() -> None:
    text = INSTALL.read_text()
    config = text.split("<<JSON\n", 1)[1].split("\nJSON\n", 1)[0]
    doc = json.loads(config.replace("$group", "/log/group").replace("\\${", "${"))
    assert doc["metrics"]["metrics_collected"]["nvidia_gpu"]["measurement"][0] == "utilization_gpu"
    body = sub_text(STACK["Resources"]["Dashboard"]["Properties"]["DashboardBody"])
    assert "nvidia_smi_utilization_gpu" in body
    files = {f["file_path"] for f in doc["logs"]["logs_collected"]["files"]["collect_list"]}
    assert "/var/log/tinyllama/worker.log" in files and "append:/var/log/tinyllama/worker.log" in text


def test_metric_filters_read_fields_the_worker_emits() -> None:
    source = (ROOT / "backend" / "entrypoints" / "worker.py").read_text()
    filters = [r["Properties"]["MetricTransformations"][0]["MetricName"] for r in STACK["Resources"].values()
               if r["Type"] == "AWS::Logs::MetricFilter"]
    emitted = [name for name in filters if f'"{name}"' in source]
    assert {"QueueDepth", "Latency"} <= set(emitted)


def test_no_template_needs_the_upload_of_a_nested_stack() -> None:
    for path in Path(INFRA).glob("*.yaml"):
        if path.name != "openapi.yaml":
            types = {r["Type"] for r in load_template(path)["Resources"].values()}
            assert "AWS::CloudFormation::Stack" not in types


def test_wake_time_filter_matches_the_workers_log_line() -> None:
    source = (ROOT / "backend" / "entrypoints" / "worker.py").read_text()
    (fmt,) = re.findall(r'basicConfig\(.*format="([^"]+)"', source)
    (message,) = re.findall(r'log\.info\("(wake complete in %\.1f s: %s)"', source)
    record = logging.LogRecord("tinyllama.worker", logging.INFO, "", 0, message, (42.06, {"ready": 1}), None)
    tokens = logging.Formatter(fmt).format(record).split(" ")
    pattern = STACK["Resources"]["WakeTimeMetric"]["Properties"]["FilterPattern"]
    fields = [f.strip() for f in pattern.strip("[]").split(",")]
    for token, field in zip(tokens, fields, strict=False):
        if "=" in field:
            assert token == field.split("=")[1].strip().strip('"'), (token, field)
    assert float(tokens[fields.index("seconds")]) == 42.1
    assert fields[-1] == "..."


def test_worker_python_meets_the_packages_requirement() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    (minimum,) = re.findall(r">=\s*3\.(\d+)", project["project"]["requires-python"])
    (default,) = re.findall(r"python=\$\{PYTHON:-python3\.(\d+)\}", INSTALL.read_text())
    assert int(default) >= int(minimum)


def test_pipeline_variables_come_from_earlier_stages() -> None:
    """#{Namespace.VAR} resolves only for a namespace an earlier action declared."""
    declared: set[str] = set()
    for stage_ in PIPELINE["Resources"]["Pipeline"]["Properties"]["Stages"]:
        for action in stage_["Actions"]:
            used = set(re.findall(r"#\{([A-Za-z]+)\.[A-Za-z_]+\}", json.dumps(action["Configuration"])))
            assert used <= declared, f"{action['Name']} uses {used - declared} before it is declared"
        declared |= {a["Namespace"] for a in stage_["Actions"] if "Namespace" in a}
    assert {"SourceVariables", "Test", "Image"} <= declared


def test_image_builder_reads_what_the_test_stage_uploads() -> None:
    spec = yaml.safe_load((INFRA / "buildspec-test.yml").read_text())
    commands = "\n".join(spec["phases"]["post_build"]["commands"])
    uploads = re.findall(r'"s3://\$\{ARTIFACT_BUCKET\}/(image/[^"]+)"', commands)
    assert uploads == ["image/worker-image.tar"]
    data = sub_text(PIPELINE["Resources"]["WorkerComponent"]["Properties"]["Data"])
    assert f"s3://${{ArtifactBucket}}/{uploads[0]}" in data
    statements = PIPELINE["Resources"]["ImageBuilderRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
    (read,) = [st for st in statements if st["Action"] == "s3:GetObject"]
    assert sub_text(read["Resource"]).endswith(uploads[0])
