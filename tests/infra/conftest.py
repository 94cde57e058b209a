"""Shared parts of the template tests: the templates, a CloudFormation-aware loader and
checkov in a virtual environment of its own (it pins an old boto3)."""

from __future__ import annotations

import json
import os
import subprocess
import venv
from pathlib import Path
from typing import Any

import platformdirs
import pytest

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
TEMPLATES = [INFRA / "mvp.yaml", INFRA / "stack.yaml", INFRA / "pipeline.yaml"]
CHECKOV_REQUIREMENT = "checkov==3.3.30"  # the version these templates were checked with
# In the user's cache folder ($XDG_CACHE_HOME on Linux), never in the checkout; named by its
# version, so a new pin gets a fresh environment.
CHECKOV_VENV = platformdirs.user_cache_path("tinyllama") / "test-tools" / (
    CHECKOV_REQUIREMENT.replace("==", "-") + "-venv")


def load_template(path: Path) -> dict[str, Any]:
    """The template as plain dicts, intrinsic functions in their long form ({"Ref": ...})."""
    from cfnlint.decode import cfn_yaml

    return json.loads(json.dumps(cfn_yaml.load(str(path))))


@pytest.fixture(scope="session")
def checkov_bin() -> Path:
    """checkov from CHECKOV_VENV (the user's cache folder), created with pip the first time."""
    binary = CHECKOV_VENV / "bin" / "checkov"
    if not binary.exists():
        venv.EnvBuilder(with_pip=True, clear=True).create(CHECKOV_VENV)
        subprocess.run([str(CHECKOV_VENV / "bin" / "python"), "-m", "pip", "install", "--quiet",
                        CHECKOV_REQUIREMENT], check=True, timeout=600)
    return binary


def run_checkov(checkov: Path, files: list[Path]) -> dict[str, Any]:
    """checkov's JSON report for `files` (offline: no guideline download, no telemetry)."""
    cmd = [str(checkov), "--framework", "cloudformation", "--skip-download", "--compact",
           "--output", "json"]
    for path in files:
        cmd += ["--file", str(path)]
    env = {**os.environ, "BC_SKIP_MAPPING": "TRUE", "CHECKOV_RUN_SCA_PACKAGE_SCAN_V2": "false"}
    env.pop("PYTHONPATH", None)
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300, cwd=ROOT)
    # checkov exits 1 when a check fails; the report says which, so read it either way.
    assert result.returncode in (0, 1), result.stderr[-3000:]
    report = json.loads(result.stdout)
    if isinstance(report, list):  # one report per framework; there is only one here
        (report,) = report
    return report


@pytest.fixture(scope="session")
def checkov_report(checkov_bin: Path) -> dict[str, Any]:
    """One checkov run over every template."""
    return run_checkov(checkov_bin, TEMPLATES)
