"""What a deployment uploads, and the stack parameters that point at it. Qt-free.

The MVP needs the router zip and its template; the full stack also needs the worker's
wheel and install script, which the GPU instance fetches on first boot. The zip and the
wheel are built once per release by `python packaging/build_artifacts.py` and travel with
the app: the frozen bundle carries them (`<bundle>/_internal/artifacts/`), a source checkout
keeps them in `build/artifacts/` and builds them there, once, when they are missing or older
than its code. Nothing here runs pip in the bundle, and every file is checked against the
manifest's sha256 before it is uploaded. Builders are injectable; tests pass small fakes.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import subprocess
import sys
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from desktop.services.deploy.bucket import Artifact
from desktop.services.deploy.errors import DeployError
from desktop.services.deploy.stack import StackDeployer

ROOT = Path(__file__).resolve().parents[2]  # in the bundle: its _internal/ folder
TEMPLATES = {"mvp": ROOT / "infra" / "mvp.yaml", "stack": ROOT / "infra" / "stack.yaml"}
INSTALL_SCRIPT = ROOT / "infra" / "image" / "install_worker.sh"
BUILD_SCRIPT = ROOT / "packaging" / "build_artifacts.py"
BUILD_COMMAND = "python packaging/build_artifacts.py"
MANIFEST = "manifest.json"
# A folder of prebuilt artifacts to use instead of the bundle's or build/artifacts/.
ENV_FOLDER = "TINYLLAMA_ARTIFACTS"
# Which parameter of which template names each uploaded file.
KEY_PARAMETERS = {
    "mvp": {"router.zip": ("CodeS3Key",)},
    "stack": {"router.zip": ("RouterZipKey",), "worker.whl": ("WorkerWheelKey",),
              "install_worker.sh": ("WorkerInstallKey",)},
}

Progress = Callable[[str], None]


def frozen() -> bool:
    """True in the PyInstaller bundle."""
    return bool(getattr(sys, "frozen", False))


def default_folder() -> Path:
    """Where this copy of the app keeps its release artifacts."""
    if os.environ.get(ENV_FOLDER):
        return Path(os.environ[ENV_FOLDER])
    return ROOT / "artifacts" if frozen() else ROOT / "build" / "artifacts"


@dataclass(frozen=True)
class Release:
    """A folder of built artifacts and its manifest ({version, source, files})."""

    folder: Path
    manifest: Mapping[str, Any]

    def file(self, name: str) -> Path:
        """The artifact `name` ("router.zip", "worker.whl"), after checking its sha256."""
        entry = self.manifest.get("files", {}).get(name)
        if not entry:
            raise DeployError(f"{self.folder / MANIFEST} lists no {name}: rebuild with `{BUILD_COMMAND}`.",
                              code="ArtifactMissing")
        path = self.folder / entry["file"]
        if not path.is_file():
            raise DeployError(f"{path} is missing: rebuild with `{BUILD_COMMAND}`.", code="ArtifactMissing")
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest != entry["sha256"]:
            raise DeployError(f"{path} is not the file that was built (its sha256 differs from the manifest's); "
                              f"it may be damaged. Rebuild with `{BUILD_COMMAND}`"
                              + (" or reinstall the app." if frozen() else "."), code="ArtifactCorrupt")
        return path


def read_manifest(folder: Path) -> dict[str, Any] | None:
    """The folder's manifest, or None when there is none (or it cannot be read)."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) else None


def app_version() -> str:
    """The version the artifacts must have: pyproject.toml's from source, the installed one frozen."""
    if frozen():
        import importlib.metadata

        return importlib.metadata.version("tinyllama")
    return str(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"])


def source_digest() -> str:
    """packaging/build_artifacts.py's digest of the source it builds from (source checkouts only)."""
    spec = importlib.util.spec_from_file_location("tinyllama_build_artifacts", BUILD_SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return str(module.source_digest(ROOT))


def stale(manifest: Mapping[str, Any] | None) -> str | None:
    """Why `manifest` cannot be used by this copy of the app, or None when it can."""
    if manifest is None:
        return "they are not built yet"
    if manifest.get("version") != app_version():
        return f"they are version {manifest.get('version')}, not {app_version()}"
    if not frozen() and manifest.get("source") != source_digest():
        return "the code changed since they were built"
    return None


def run_build_script(folder: Path) -> None:
    """`python packaging/build_artifacts.py --out folder`; DeployError with its last line on failure."""
    proc = subprocess.run([sys.executable, str(BUILD_SCRIPT), "--out", str(folder)], capture_output=True,
                          text=True, cwd=ROOT)
    if proc.returncode != 0:
        lines = [line for line in proc.stderr.splitlines() if line.strip() and not line.startswith("WARNING:")]
        raise DeployError(f"Building the release artifacts failed: {(lines or ['no output'])[-1]}. "
                          f"Fix that and run `{BUILD_COMMAND}` (pip needs a package index to fetch "
                          "Linux wheels).", code="BuildFailed")


def locate_release(progress: Progress = lambda _text: None, folder: Path | None = None,
                   builder: Callable[[Path], None] = run_build_script) -> Release:
    """The release artifacts this app deploys: prebuilt ones if they fit, else (from source
    only) built once into the folder by `builder`."""
    folder = folder or default_folder()
    reason = stale(read_manifest(folder))
    if reason is None:
        return Release(folder, read_manifest(folder) or {})
    if frozen() or not BUILD_SCRIPT.exists():
        raise DeployError(f"This copy of TinyLlama carries no usable release files in {folder} ({reason}). "
                          f"Build them from a source checkout with `{BUILD_COMMAND}`, or reinstall the app.",
                          code="ArtifactMissing")
    progress(f"Building the release artifacts once ({reason}; the router zip and the worker wheel, "
             f"into {folder}; about a minute)…")
    builder(folder)
    manifest = read_manifest(folder)
    if (reason := stale(manifest)) is not None:
        raise DeployError(f"{BUILD_COMMAND} ran but {folder} still cannot be used ({reason}).", code="BuildFailed")
    return Release(folder, manifest or {})


LABELS = {"router.zip": "Router package", "worker.whl": "Worker package"}


@dataclass
class Builders:
    """Where each file comes from; swap any for tests.

    `router_zip` / `worker_wheel` left None take the release's prebuilt file (`release`
    finds or builds it); a callable makes the file in the work folder instead.
    """

    router_zip: Callable[[Path], Path] | None = None
    worker_wheel: Callable[[Path], Path] | None = None
    install_script: Path = INSTALL_SCRIPT
    templates: Mapping[str, Path] = field(default_factory=lambda: dict(TEMPLATES))
    release: Callable[[Progress], Release] = locate_release


@dataclass(frozen=True)
class Uploaded:
    """Where a deployment's files went, and the parameters that name them."""

    bucket: str
    template_url: str
    parameters: dict[str, str]


def build(template: str, workdir: Path, builders: Builders | None = None,
          progress: Progress = lambda _text: None) -> list[Artifact]:
    """The files `template` needs: the release's prebuilt ones (checked against their
    sha256) unless a builder makes them in `workdir`."""
    builders = builders or Builders()
    if template not in builders.templates:
        raise DeployError(f"Unknown template {template!r}: use mvp or stack.")
    release: Release | None = None

    def prebuilt(name: str) -> Path:
        nonlocal release
        release = release or builders.release(progress)
        path = release.file(name)
        progress(f"{LABELS[name]} {release.manifest.get('version', '')}: sha256 "
                 f"{release.manifest['files'][name]['sha256'][:12]}… matches the release")
        return path

    files = [Artifact("router.zip", builders.router_zip(workdir) if builders.router_zip else prebuilt("router.zip"),
                      keep_name=False)]
    if template == "stack":
        wheel = builders.worker_wheel(workdir) if builders.worker_wheel else prebuilt("worker.whl")
        files.append(Artifact("worker.whl", wheel))
        files.append(Artifact("install_worker.sh", builders.install_script))
    files.append(Artifact("template", builders.templates[template]))
    return files


def upload(deployer: StackDeployer, account: str, template: str, files: list[Artifact],
           progress: Callable[[str], None] = lambda _text: None) -> Uploaded:
    """Bootstrap bucket, then every file; returns the template URL and code parameters."""
    bucket, created = deployer.ensure_bootstrap_bucket(account)
    progress(f"{'Created' if created else 'Reusing'} the bootstrap bucket {bucket}")
    keys = deployer.upload(bucket, files)
    progress(f"Uploaded {len(keys)} files to s3://{bucket}/")
    parameters = {"CodeS3Bucket": bucket}
    for name, names in KEY_PARAMETERS[template].items():
        for parameter in names:
            parameters[parameter] = keys[name]
    return Uploaded(bucket, deployer.template_url(bucket, keys["template"]), parameters)
