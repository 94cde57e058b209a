"""Build the router Lambda's deployment zip and report its size.

Only what the function imports goes in: the `backend` package (never `desktop`) and the
Linux wheels of redis, PyJWT[crypto], aws-lambda-powertools and requests (the JWKS fetch
in backend/adapters/jwt_verify.py) for CPython 3.12 on x86_64, fetched with pip's
cross-platform options so the zip is right whatever machine builds it. boto3 is left out
because the Lambda runtime provides it.

    python packaging/build_router_zip.py [--out build/router.zip]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Names as in pyproject.toml's dependencies; their version specifiers are taken from there.
RUNTIME_REQUIREMENTS = ("redis", "PyJWT[crypto]", "aws-lambda-powertools", "requests")
# Provided by the python3.12 runtime; bundling them would only add ~20 MB.
EXCLUDED_DISTRIBUTIONS = ("boto3", "botocore", "s3transfer")
PLATFORMS = ("manylinux2014_x86_64", "manylinux_2_28_x86_64")  # the runtime is AL2023, glibc 2.34
PYTHON_VERSION = "3.12"
LAMBDA_ZIP_LIMIT = 50 * 1024 * 1024  # direct upload limit
LAMBDA_UNZIPPED_LIMIT = 250 * 1024 * 1024
FIXED_DATE = (2020, 1, 1, 0, 0, 0)  # same bytes for the same inputs


def requirements(pyproject: Path = ROOT / "pyproject.toml") -> list[str]:
    """RUNTIME_REQUIREMENTS with the version specifiers pyproject.toml gives them."""
    text = pyproject.read_text()
    found = []
    for name in RUNTIME_REQUIREMENTS:
        match = re.search(rf'"({re.escape(name)}[^"]*)"', text, flags=re.IGNORECASE)
        found.append(match.group(1) if match else name)
    return found


def pip_install(target: Path, reqs: list[str], python_version: str = PYTHON_VERSION) -> None:
    """Fetch Linux x86_64 CPython wheels (never sdists) into `target`."""
    cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--no-compile", "--target", str(target),
           "--implementation", "cp", "--python-version", python_version, "--only-binary=:all:"]
    for platform in PLATFORMS:
        cmd += ["--platform", platform]
    subprocess.run(cmd + reqs, check=True)


def copy_backend(target: Path, source: Path = ROOT / "backend") -> None:
    """The backend package without caches; the desktop package is a sibling and stays out."""
    shutil.copytree(source, target / "backend", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))


def prune(target: Path) -> None:
    """Drop what the runtime has or the function never loads."""
    for path in list(target.iterdir()):
        stem = path.name.split("-")[0].lower()
        if stem in EXCLUDED_DISTRIBUTIONS or path.name == "bin":
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    for cache in target.rglob("__pycache__"):
        shutil.rmtree(cache, ignore_errors=True)


def write_zip(source: Path, out: Path) -> int:
    """Zip `source` with fixed dates and sorted names; return the unzipped size."""
    out.parent.mkdir(parents=True, exist_ok=True)
    total = 0
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for path in sorted(source.rglob("*")):
            if path.is_dir():
                continue
            info = zipfile.ZipInfo(path.relative_to(source).as_posix(), FIXED_DATE)
            info.external_attr = (0o755 if os.access(path, os.X_OK) else 0o644) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            data = path.read_bytes()
            total += len(data)
            archive.writestr(info, data)
    return total


def build(out: Path, python_version: str = PYTHON_VERSION) -> tuple[int, int]:
    """Build the zip at `out`; return (zipped, unzipped) sizes in bytes.

    `python_version` other than the runtime's is for tests that import the zip's contents
    with the interpreter at hand.
    """
    with tempfile.TemporaryDirectory(prefix="router-zip-") as tmp:
        staging = Path(tmp)
        pip_install(staging, requirements(), python_version)
        copy_backend(staging)
        prune(staging)
        unzipped = write_zip(staging, out)
    zipped = out.stat().st_size
    if zipped > LAMBDA_ZIP_LIMIT or unzipped > LAMBDA_UNZIPPED_LIMIT:
        raise SystemExit(f"{out}: {zipped} bytes zipped / {unzipped} unzipped is over Lambda's limits")
    return zipped, unzipped


def main(argv: list[str] | None = None) -> int:
    """Build the zip and print its size."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "router.zip")
    parser.add_argument("--python-version", default=PYTHON_VERSION, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    zipped, unzipped = build(args.out, args.python_version)
    print(f"{args.out}: {zipped / 1024 / 1024:.1f} MiB zipped, {unzipped / 1024 / 1024:.1f} MiB unzipped")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
