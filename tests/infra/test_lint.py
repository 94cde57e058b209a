"""cfn-lint and checkov over every template: no error, no warning, no failed check, and
every suppression written on its resource with a reason."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from cfnlint.api import ManualArgs, lint_file

from tests.infra.conftest import CHECKOV_VENV, INFRA, ROOT, TEMPLATES, load_template, run_checkov


def test_checkovs_environment_lives_outside_the_checkout() -> None:
    """Tests never write into the checkout: checkov's 300 MB venv goes to the user's cache."""
    assert CHECKOV_VENV.is_absolute() and ROOT.resolve() not in CHECKOV_VENV.resolve().parents


def test_every_template_is_checked() -> None:
    found = {p.name for p in INFRA.glob("*.yaml")} - {"openapi.yaml"}
    assert found == {p.name for p in TEMPLATES}


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda p: p.name)
def test_cfn_lint_finds_nothing(template: Path) -> None:
    matches = [m for m in lint_file(template, config=ManualArgs()) if m.rule.id[0] in "EW"]
    assert not matches, "\n".join(f"{m.rule.id} {m.linenumber}: {m.message}" for m in matches)


def test_cfn_lint_would_catch_a_broken_template(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text((INFRA / "mvp.yaml").read_text().replace("Runtime: python3.12", "Runtime: python2.9"))
    assert any(m.rule.id.startswith("E") for m in lint_file(broken, config=ManualArgs()))


def test_checkov_has_no_failed_check(checkov_report: dict[str, Any]) -> None:
    failed = checkov_report["results"]["failed_checks"]
    assert not failed, "\n".join(f"{c['check_id']} {c['file_path']} {c['resource']}: {c['check_name']}"
                                 for c in failed)
    assert checkov_report["summary"]["parsing_errors"] == 0
    assert checkov_report["summary"]["passed"] > 100


def _suppressions() -> list[tuple[str, str, str, str]]:
    out = []
    for path in TEMPLATES:
        for name, resource in load_template(path)["Resources"].items():
            for skip in resource.get("Metadata", {}).get("checkov", {}).get("skip", []):
                out.append((path.name, f"{resource['Type']}.{name}", skip["id"], skip.get("comment", "")))
    return out


def test_every_suppression_has_a_reason_and_is_needed(checkov_report: dict[str, Any]) -> None:
    skipped = {(Path(c["file_path"]).name, c["resource"], c["check_id"])
               for c in checkov_report["results"]["skipped_checks"]}
    suppressions = _suppressions()
    assert suppressions, "expected the documented suppressions"
    for file, resource, check, reason in suppressions:
        assert len(reason.split()) >= 6, f"{file} {resource} {check}: say why it is suppressed"
        assert (file, resource, check) in skipped, f"{file} {resource} {check}: suppresses nothing"
    # and nothing is skipped except on its resource (no global --skip-check)
    assert skipped == {(f, r, c) for f, r, c, _ in suppressions}


def test_checkov_would_catch_imdsv1_and_ssh(checkov_bin: Path, tmp_path: Path) -> None:
    """The harness fails on a real regression of the worker's hardening."""
    text = (INFRA / "stack.yaml").read_text()
    text = text.replace("          HttpTokens: required\n", "          HttpTokens: optional\n", 1)
    ssh = ("      SecurityGroupIngress:\n"
           "        - {IpProtocol: tcp, FromPort: 22, ToPort: 22, CidrIp: 0.0.0.0/0}\n")
    marker = "      GroupDescription: GPU worker - no inbound at all (SSM only), HTTPS and Redis out\n"
    assert marker in text
    text = text.replace(marker, marker + ssh)
    broken = tmp_path / "stack.yaml"
    broken.write_text(text)
    failed = {(c["check_id"], c["resource"]) for c in run_checkov(checkov_bin, [broken])["results"]["failed_checks"]}
    assert ("CKV_AWS_79", "AWS::EC2::LaunchTemplate.WorkerLaunchTemplate") in failed
    assert ("CKV_AWS_24", "AWS::EC2::SecurityGroup.WorkerSecurityGroup") in failed


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda p: p.name)
def test_parameters_are_grouped_and_constrained(template: Path) -> None:
    doc = load_template(template)
    params = doc["Parameters"]
    groups = doc["Metadata"]["AWS::CloudFormation::Interface"]["ParameterGroups"]
    grouped = [name for group in groups for name in group["Parameters"]]
    assert sorted(grouped) == sorted(params), "each parameter in exactly one group"
    for name, p in params.items():
        if p["Type"] == "String":
            assert "AllowedPattern" in p or "AllowedValues" in p, name
            if "AllowedPattern" in p:  # otherwise the console shows only the regex
                assert "ConstraintDescription" in p, name
        elif p["Type"] == "Number":
            assert ("MinValue" in p and "MaxValue" in p) or "AllowedValues" in p, name


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda p: p.name)
def test_every_taggable_resource_carries_the_stack_tag(template: Path) -> None:
    from cfnlint.schema import PROVIDER_SCHEMA_MANAGER

    for name, resource in load_template(template)["Resources"].items():
        schema = PROVIDER_SCHEMA_MANAGER.get_resource_schema("us-east-1", resource["Type"]).schema
        key = next((k for k in ("Tags", "UserPoolTags") if k in schema.get("properties", {})), None)
        if key is None:
            continue
        tags = resource["Properties"].get(key)
        keys = set(tags) if isinstance(tags, dict) else {t["Key"] for t in tags or []}
        assert "tinyllama:stack" in keys, f"{name} ({resource['Type']}) has no tinyllama:stack tag"
