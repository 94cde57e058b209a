"""The release artifacts as `python packaging/build_artifacts.py` builds them (pip fetches
from the package index it reaches; about 15 s): the worker-only wheel, the router zip,
the manifest, and `tinyllama deploy` from source uploading exactly those bytes to moto."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import uuid
import venv
import zipfile
from pathlib import Path
from typing import Any

import boto3
import pytest

from tests.fixtures.aws import aws_env, moto_server  # noqa: F401
from tests.fixtures.moto_templates import for_moto
from tests.infra.conftest import INFRA, load_template

ROOT = Path(__file__).resolve().parents[2]
DESKTOP_ONLY = ("pyside6", "pycognito", "keyring", "markdown-it-py", "pygments", "platformdirs")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("artifacts")
    proc = subprocess.run([sys.executable, str(ROOT / "packaging" / "build_artifacts.py"), "--out", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


def manifest(release: Path) -> dict[str, Any]:
    return dict(json.loads((release / "manifest.json").read_text()))


def wheel(release: Path) -> Path:
    return release / manifest(release)["files"]["worker.whl"]["file"]


def test_the_worker_wheel_is_the_backend_alone_with_the_workers_dependencies(release: Path) -> None:
    path = wheel(release)
    assert path.name == "tinyllama_worker-0.1.0-py3-none-any.whl"
    archive = zipfile.ZipFile(path)
    names = archive.namelist()
    assert "backend/entrypoints/worker.py" in names
    assert {n.split("/")[0] for n in names} == {"backend", "tinyllama_worker-0.1.0.dist-info"}
    metadata = archive.read("tinyllama_worker-0.1.0.dist-info/METADATA").decode()
    requires = [line.split(":", 1)[1].strip().lower() for line in metadata.splitlines()
                if line.startswith("Requires-Dist:")]
    assert requires and not [r for r in requires if r.startswith(DESKTOP_ONLY)], requires
    assert {r.split(">")[0] for r in requires} == {"redis", "openai", "boto3", "requests", "aws-lambda-powertools"}
    entry_points = archive.read("tinyllama_worker-0.1.0.dist-info/entry_points.txt").decode()
    assert "tinyllama-worker = backend.entrypoints.worker:main" in entry_points


def test_the_manifest_names_every_file_with_its_sha256(release: Path) -> None:
    import hashlib

    found = manifest(release)
    assert found["version"] == "0.1.0"
    for entry in found["files"].values():
        data = (release / entry["file"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == entry["sha256"] and len(data) == entry["size"]


def test_the_router_zip_has_no_desktop_or_local_only_code(release: Path) -> None:
    names = zipfile.ZipFile(release / "router.zip").namelist()
    assert "backend/entrypoints/router.py" in names
    assert not [n for n in names if n.startswith("desktop/")]
    for local_only in ("commands.py", "__main__.py", "local.py", "local_service.py", "watchdog.py", "gateway.py",
                       "worker.py"):
        assert f"backend/entrypoints/{local_only}" not in names


def test_a_fresh_venv_installs_the_worker_without_qt(release: Path, tmp_path: Path) -> None:
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python = env_dir / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", str(wheel(release))], check=True,
                   capture_output=True, timeout=600)
    listed = subprocess.run([str(python), "-m", "pip", "list", "--format", "json"], check=True, capture_output=True,
                            text=True).stdout
    installed = {p["name"].lower() for p in json.loads(listed)}
    assert "tinyllama-worker" in installed and "redis" in installed
    assert not installed & {*DESKTOP_ONLY, "pyside6-essentials", "shiboken6", "pyjwt"}, installed
    assert (env_dir / "bin" / "tinyllama-worker").exists()
    smoke = ("import backend.entrypoints.worker as w, backend.entrypoints.settings, backend.adapters.engines, "
             "backend.adapters.compute_ec2, aws_lambda_powertools.metrics, openai; print(w.main_from_env.__name__)")
    proc = subprocess.run([str(python), "-c", smoke], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "main_from_env", proc.stderr[-2000:]
    # The image bake's test phase runs this (infra/pipeline.yaml): it must explain, not start a worker.
    helped = subprocess.run([str(env_dir / "bin" / "tinyllama-worker"), "--help"], capture_output=True, text=True,
                            cwd=tmp_path, timeout=60)
    assert helped.returncode == 0 and "REDIS_URL" in helped.stdout, helped.stderr[-2000:]


@pytest.fixture
def endpoint(aws_env: str, monkeypatch: pytest.MonkeyPatch) -> str:  # noqa: F811
    url = aws_env.replace("127.0.0.1", "localhost")  # moto reads TemplateURL on localhost path-style
    monkeypatch.setenv("AWS_ENDPOINT_URL", url)
    return url


def test_deploy_from_source_uploads_the_built_router_zip(release: Path, endpoint: str, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    """`tinyllama deploy --template mvp --direct` with prebuilt artifacts: Lambda's code is the zip."""
    from desktop.cli import main

    monkeypatch.setenv("TINYLLAMA_ARTIFACTS", str(release))
    parameters = {"AlertEmail": "a@example.com", "SourceRepositoryUrl": "https://github.com/example/tinyllama"}
    template, _dropped = for_moto(load_template(INFRA / "mvp.yaml"), parameters)
    template_file = tmp_path / "mvp-for-moto.json"
    template_file.write_text(json.dumps(template))
    name = f"tl-{uuid.uuid4().hex[:6]}"
    code = main(["deploy", "--stack-name", name, "--template", "mvp", "--template-file", str(template_file),
                 "--direct", "--yes", "--poll-interval", "0",
                 *[arg for k, v in parameters.items() for arg in ("-p", f"{k}={v}")]])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "Building the release artifacts" not in out
    function = boto3.client("lambda", region_name="us-east-1").get_function(FunctionName="tinyllama-router")
    expected = base64.b64encode(bytes.fromhex(manifest(release)["files"]["router.zip"]["sha256"])).decode()
    assert function["Configuration"]["CodeSha256"] == expected
