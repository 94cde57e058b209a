"""Build the files a deployment uploads, once per release, with their sha256.

    python packaging/build_artifacts.py [--out build/artifacts]

Writes into one folder:

- `router.zip`: the router Lambda's code (packaging/build_router_zip.py's build);
- `tinyllama_worker-<version>-py3-none-any.whl`: the GPU instance's worker, the package
  `tinyllama-worker` — the `backend` package alone, with only the dependencies the worker
  imports (no Qt, Cognito client, keyring or Markdown) and the console script
  `tinyllama-worker`;
- `manifest.json`: `{version, source, files: {name: {file, sha256, size}}}`, written last,
  so a folder whose build failed has no manifest and is never used.

packaging/build.py runs this before PyInstaller and the bundle carries the folder; from a
source checkout `tinyllama deploy` and the wizard use `build/artifacts/` while its manifest
matches the source, and run this when it does not.

Why the worker wheel is built the way it is: backend/ and a generated pyproject.toml are
staged in a temporary folder and built by `pip wheel` *with* build isolation, so pip
fetches a setuptools that has `bdist_wheel` built in (>= 70.1) whatever the venv holds
(`python3 -m venv` on 3.11 gives setuptools 65, whose builds without isolation fail with
"invalid command 'bdist_wheel'"). SOURCE_DATE_EPOCH fixes the wheel's timestamps, so the
same source gives the same bytes and the upload (keyed by content) is skipped.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import tempfile
import tomllib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import build_router_zip
from build_router_zip import BuildError, requirements, run_pip

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "build" / "artifacts"
MANIFEST = "manifest.json"
WORKER_DISTRIBUTION = "tinyllama-worker"
WORKER_SCRIPT = "tinyllama-worker = backend.entrypoints.worker:main"
# What backend.entrypoints.worker imports at run time on the instance: the queue (redis),
# the vLLM / OpenAI-compatible engine (openai), the idle stop (boto3), IMDS (requests),
# metrics and the Redis secret (aws-lambda-powertools). PyJWT is the router's alone.
WORKER_REQUIREMENTS = ("redis", "openai", "boto3", "requests", "aws-lambda-powertools")
# Everything the artifacts are built from: a change to any of them makes them stale.
SOURCES = ("backend/**/*.py", "pyproject.toml", "packaging/build_artifacts.py", "packaging/build_router_zip.py")
FIXED_EPOCH = "1577836800"  # 2020-01-01, as the router zip's FIXED_DATE


def project(pyproject: Path = ROOT / "pyproject.toml") -> dict[str, object]:
    """pyproject.toml's [project] table."""
    return dict(tomllib.loads(pyproject.read_text())["project"])


def source_digest(root: Path = ROOT) -> str:
    """sha256 over SOURCES' paths and bytes: the manifest records it, so a checkout can
    tell that its artifacts were built from the code it holds."""
    digest = hashlib.sha256()
    for path in sorted({p for pattern in SOURCES for p in root.glob(pattern) if "__pycache__" not in p.parts}):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def worker_pyproject(version: str, requires_python: str) -> str:
    """The worker package's pyproject.toml (TOML strings written as JSON ones, which TOML reads)."""
    deps = ", ".join(json.dumps(r) for r in requirements(WORKER_REQUIREMENTS))
    name, target = (part.strip() for part in WORKER_SCRIPT.split("="))
    return f"""\
[build-system]
requires = ["setuptools>=70.1"]
build-backend = "setuptools.build_meta"

[project]
name = "{WORKER_DISTRIBUTION}"
version = {json.dumps(version)}
description = "The TinyLlama GPU worker: Redis queue to vLLM, without the desktop app."
requires-python = {json.dumps(requires_python)}
license = {{ text = "Apache-2.0" }}
dependencies = [{deps}]

[project.scripts]
{name} = {json.dumps(target)}

[tool.setuptools.packages.find]
include = ["backend*"]
"""


def build_worker_wheel(out_dir: Path) -> Path:
    """Build the tinyllama-worker wheel into `out_dir`; returns its path."""
    meta = project()
    with tempfile.TemporaryDirectory(prefix="worker-wheel-") as tmp:
        stage = Path(tmp) / "src"
        shutil.copytree(ROOT / "backend", stage / "backend", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        (stage / "pyproject.toml").write_text(worker_pyproject(str(meta["version"]), str(meta["requires-python"])))
        wheels = Path(tmp) / "wheels"
        run_pip(["wheel", "--no-deps", "--quiet", "--wheel-dir", str(wheels), str(stage)],
                env={**os.environ, "SOURCE_DATE_EPOCH": FIXED_EPOCH})
        (wheel,) = wheels.glob("*.whl")
        out_dir.mkdir(parents=True, exist_ok=True)
        return Path(shutil.copy2(wheel, out_dir / wheel.name))


def sha256(path: Path) -> str:
    """The file's sha256, hex."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def build(out: Path = DEFAULT_OUT) -> dict[str, object]:
    """Build every artifact into `out` and write its manifest; returns the manifest."""
    out.mkdir(parents=True, exist_ok=True)
    (out / MANIFEST).unlink(missing_ok=True)  # until the new one is written, the folder is not a release
    for old in [*out.glob("*.whl"), out / "router.zip"]:
        old.unlink(missing_ok=True)
    router = out / "router.zip"
    build_router_zip.build(router)
    wheel = build_worker_wheel(out)
    manifest: dict[str, object] = {
        "version": str(project()["version"]),
        "source": source_digest(),
        "files": {name: {"file": path.name, "sha256": sha256(path), "size": path.stat().st_size}
                  for name, path in (("router.zip", router), ("worker.whl", wheel))},
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def main(argv: list[str] | None = None) -> int:
    """Build, print what was made; on failure print the one line that says why and exit 1."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="the folder (default: build/artifacts/)")
    args = parser.parse_args(argv)
    try:
        manifest = build(args.out)
    except BuildError as exc:
        print(f"build_artifacts.py: {exc}", file=sys.stderr)
        return 1
    files = manifest["files"]
    assert isinstance(files, dict)
    for name, entry in files.items():
        print(f"{args.out / entry['file']}: {entry['size'] / 1024 / 1024:.1f} MiB  sha256 {entry['sha256']}  ({name})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
