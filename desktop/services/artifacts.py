"""What a deployment uploads, and the stack parameters that point at it. Qt-free.

The MVP needs the router zip and its template; the full stack also needs the worker's
wheel and install script, which the GPU instance fetches on first boot. Builders are
injectable: the real ones run pip (the router zip fetches Linux wheels), tests pass
small fakes.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from desktop.services.deploy.bucket import Artifact
from desktop.services.deploy.errors import DeployError
from desktop.services.deploy.stack import StackDeployer

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = {"mvp": ROOT / "infra" / "mvp.yaml", "stack": ROOT / "infra" / "stack.yaml"}
INSTALL_SCRIPT = ROOT / "infra" / "image" / "install_worker.sh"
# Which parameter of which template names each uploaded file.
KEY_PARAMETERS = {
    "mvp": {"router.zip": ("CodeS3Key",)},
    "stack": {"router.zip": ("RouterZipKey",), "worker.whl": ("WorkerWheelKey",),
              "install_worker.sh": ("WorkerInstallKey",)},
}


def build_router_zip(workdir: Path) -> Path:
    """packaging/build_router_zip.py's build, into `workdir`."""
    out = workdir / "router.zip"
    proc = subprocess.run([sys.executable, str(ROOT / "packaging" / "build_router_zip.py"), "--out", str(out)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise DeployError("Building the router package failed (pip needs the network to fetch Linux wheels): "
                          + (proc.stderr.strip().splitlines() or ["no output"])[-1], code="BuildFailed")
    return out


def build_worker_wheel(workdir: Path) -> Path:
    """The project's own wheel (no dependencies; the instance installs those)."""
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                           "--quiet", "-w", str(workdir), str(ROOT)], capture_output=True, text=True)
    wheels = sorted(workdir.glob("tinyllama-*.whl"))
    if proc.returncode != 0 or not wheels:
        raise DeployError("Building the worker wheel failed: "
                          + (proc.stderr.strip().splitlines() or ["no wheel made"])[-1], code="BuildFailed")
    return wheels[-1]


@dataclass
class Builders:
    """How each file is made; swap any for tests."""

    router_zip: Callable[[Path], Path] = build_router_zip
    worker_wheel: Callable[[Path], Path] = build_worker_wheel
    install_script: Path = INSTALL_SCRIPT
    templates: Mapping[str, Path] = field(default_factory=lambda: dict(TEMPLATES))


@dataclass(frozen=True)
class Uploaded:
    """Where a deployment's files went, and the parameters that name them."""

    bucket: str
    template_url: str
    parameters: dict[str, str]


def build(template: str, workdir: Path, builders: Builders | None = None,
          progress: Callable[[str], None] = lambda _text: None) -> list[Artifact]:
    """Make the files `template` needs, in `workdir`."""
    builders = builders or Builders()
    if template not in builders.templates:
        raise DeployError(f"Unknown template {template!r}: use mvp or stack.")
    progress("Building the router package…")
    files = [Artifact("router.zip", builders.router_zip(workdir), keep_name=False)]
    if template == "stack":
        progress("Building the worker wheel…")
        files.append(Artifact("worker.whl", builders.worker_wheel(workdir)))
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
