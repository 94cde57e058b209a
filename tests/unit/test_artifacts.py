"""desktop/services/artifacts.py finds the release's prebuilt files and checks them; from
source it builds them once when they are missing or stale, and says what failed when it
cannot. The folders here are small hand-made releases in tmp_path; the real build is
tests/packaging/test_artifacts_build.py."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import pytest

from desktop.services import artifacts
from desktop.services.deploy.errors import DeployError
from tests.helpers import load_script

ROOT = Path(__file__).resolve().parents[2]


def make_release(folder: Path, version: str | None = None, source: str | None = None) -> Path:
    """A release folder as build_artifacts.py writes it, with tiny files."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {"router.zip": "router.zip", "worker.whl": "tinyllama_worker-0.1.0-py3-none-any.whl"}
    entries = {}
    for name, file in files.items():
        data = f"bytes of {name}".encode()
        (folder / file).write_bytes(data)
        entries[name] = {"file": file, "sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
    manifest = {"version": version or artifacts.app_version(), "source": source or artifacts.source_digest(),
                "files": entries}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


def no_build(_folder: Path) -> None:
    raise AssertionError("nothing should be built")


def test_a_fresh_release_is_used_as_it_is(tmp_path: Path) -> None:
    folder = make_release(tmp_path / "art")
    said: list[str] = []
    builders = artifacts.Builders(release=lambda p: artifacts.locate_release(p, folder, builder=no_build))
    files = artifacts.build("stack", tmp_path / "work", builders, said.append)
    paths = {f.name: f.path for f in files}
    assert paths["router.zip"] == folder / "router.zip"
    assert paths["worker.whl"] == folder / "tinyllama_worker-0.1.0-py3-none-any.whl"
    assert paths["install_worker.sh"] == artifacts.INSTALL_SCRIPT
    assert not any("Building" in line for line in said)
    manifest = json.loads((folder / "manifest.json").read_text())
    assert said == [f"Router package {manifest['version']}: sha256 {manifest['files']['router.zip']['sha256'][:12]}… "
                    "matches the release",
                    f"Worker package {manifest['version']}: sha256 {manifest['files']['worker.whl']['sha256'][:12]}… "
                    "matches the release"]


def test_a_changed_file_is_refused_before_upload(tmp_path: Path) -> None:
    folder = make_release(tmp_path / "art")
    (folder / "router.zip").write_bytes(b"something else")
    builders = artifacts.Builders(release=lambda p: artifacts.locate_release(p, folder, builder=no_build))
    with pytest.raises(DeployError) as err:
        artifacts.build("mvp", tmp_path / "work", builders)
    assert err.value.code == "ArtifactCorrupt"
    assert "sha256" in str(err.value) and artifacts.BUILD_COMMAND in str(err.value)


@pytest.mark.parametrize("why", ["version", "source", "missing"])
def test_from_source_a_stale_or_missing_release_is_built_once(tmp_path: Path, why: str) -> None:
    folder = tmp_path / "art"
    if why == "version":
        make_release(folder, version="0.0.1")
    elif why == "source":
        make_release(folder, source="0" * 64)
    built: list[Path] = []

    def builder(target: Path) -> None:
        built.append(target)
        make_release(target)

    said: list[str] = []
    release = artifacts.locate_release(said.append, folder, builder=builder)
    assert built == [folder]
    assert release.file("router.zip") == folder / "router.zip"
    assert any(line.startswith("Building the release artifacts once (") for line in said), said


def test_frozen_never_builds_and_names_the_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    with pytest.raises(DeployError) as err:
        artifacts.locate_release(lambda _t: None, tmp_path / "empty", builder=no_build)
    assert err.value.code == "ArtifactMissing" and artifacts.BUILD_COMMAND in str(err.value)


def test_frozen_looks_in_the_bundle_and_checks_the_installed_version(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(artifacts.ENV_FOLDER, raising=False)
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    assert artifacts.default_folder() == artifacts.ROOT / "artifacts"
    # frozen there is no source to digest: only the version and each file's sha256 count
    folder = make_release(tmp_path / "art", source="not checked when frozen")
    assert artifacts.locate_release(lambda _t: None, folder, builder=no_build).file("worker.whl").exists()


def test_the_build_scripts_failure_reaches_the_person_as_its_last_line(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """A real run of build_artifacts.py with no package index: pip's cause, not its hint."""
    for name in [n for n in list(__import__("os").environ) if n.startswith("PIP_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("PIP_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    with pytest.raises(DeployError) as err:
        artifacts.locate_release(lambda _t: None, tmp_path / "art")
    text = str(err.value)
    assert err.value.code == "BuildFailed" and artifacts.BUILD_COMMAND in text
    assert "No matching distribution found" in text or "Could not find a version" in text, text
    assert "See above for details" not in text
    assert not (tmp_path / "art" / "manifest.json").exists()


BDIST_WHEEL_FAILURE = """\
  error: subprocess-exited-with-error

  × python setup.py bdist_wheel did not run successfully.
  │ exit code: 1
  ╰─> [6 lines of output]
      usage: setup.py [global_opts] cmd1 [cmd1_opts] [cmd2 [cmd2_opts] ...]
         or: setup.py --help [cmd1 cmd2 ...]

      error: invalid command 'bdist_wheel'
      [end of output]

  note: This error originates from a subprocess, and is likely not a problem with pip.
  ERROR: Failed building wheel for tinyllama
ERROR: Failed to build one or more wheels
hint: See above for details.
"""


def test_pip_error_line_is_the_cause_not_the_hint() -> None:
    line = load_script("build_router_zip").pip_error_line
    assert line(BDIST_WHEEL_FAILURE) == "error: invalid command 'bdist_wheel'"
    assert line("WARNING: Retrying\nERROR: Could not find a version that satisfies the requirement redis>=5.0 "
                "(from versions: none)\nERROR: No matching distribution found for redis>=5.0\n") == (
        "ERROR: No matching distribution found for redis>=5.0")


def test_the_router_zip_takes_only_what_the_router_reaches() -> None:
    modules = {p.relative_to(ROOT).as_posix() for p in load_script("build_router_zip").backend_modules()}
    assert {"backend/__init__.py", "backend/entrypoints/__init__.py", "backend/entrypoints/router.py",
            "backend/adapters/redis_queue.py", "backend/core/service.py"} <= modules
    local_only = {"backend/entrypoints/commands.py", "backend/entrypoints/__main__.py",
                  "backend/entrypoints/local.py", "backend/entrypoints/local_service.py",
                  "backend/entrypoints/watchdog.py", "backend/entrypoints/gateway.py",
                  "backend/entrypoints/worker.py", "backend/adapters/compute_local.py"}
    assert not modules & local_only
    assert not any(m.startswith("desktop/") for m in modules)


def test_worker_requirements_are_pyprojects_and_cover_what_the_worker_imports() -> None:
    build_artifacts = load_script("build_artifacts")
    reqs = build_artifacts.requirements(build_artifacts.WORKER_REQUIREMENTS)
    assert reqs == ["redis>=5.0", "openai>=1.40", "boto3>=1.34", "requests>=2.31", "aws-lambda-powertools>=3.0"]
    from tests.infra.test_router_contract import third_party_imports

    # jwt/cryptography are reached only through settings.identity_from_env, which the router calls
    needed = third_party_imports("backend.entrypoints.worker") - {"jwt", "cryptography", "botocore"}
    tops = {"redis": "redis", "openai": "openai", "boto3": "boto3", "requests": "requests",
            "aws-lambda-powertools": "aws_lambda_powertools"}
    assert needed <= {tops[r.split(">")[0]] for r in reqs}, needed
