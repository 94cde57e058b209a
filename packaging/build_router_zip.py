"""Build the router Lambda's deployment zip and report its size.

Only what the function imports goes in: the modules of the `backend` package that
backend/entrypoints/router.py reaches (never `desktop`, nor the local profile's gateway,
watchdog and commands, nor the worker) and the Linux wheels of redis, PyJWT[crypto],
aws-lambda-powertools and requests (the JWKS fetch in backend/adapters/jwt_verify.py) for
CPython 3.12 on x86_64, fetched with pip's cross-platform options so the zip is right
whatever machine builds it. boto3 is left out because the Lambda runtime provides it.

    python packaging/build_router_zip.py [--out build/router.zip]
"""

from __future__ import annotations

import argparse
import ast
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


ENTRY_MODULE = "backend.entrypoints.router"
# pip's own summary lines say only that something failed; the line before them says what.
PIP_GENERIC = re.compile(r"subprocess-exited-with-error|metadata-generation-failed|Failed building wheel|"
                         r"Could not build wheels|Failed to build|failed-wheel-build|See above for details",
                         re.IGNORECASE)


class BuildError(Exception):
    """A build step failed; the message is the one line that says what failed."""


def requirements(names: tuple[str, ...] = RUNTIME_REQUIREMENTS, pyproject: Path = ROOT / "pyproject.toml") -> list[str]:
    """`names` with the version specifiers pyproject.toml gives them (its one list is the source)."""
    text = pyproject.read_text()
    found = []
    for name in names:
        match = re.search(rf'"({re.escape(name)}(?:[<>=!~;\[ ][^"]*)?)"', text, flags=re.IGNORECASE)
        found.append(match.group(1) if match else name)
    return found


def pip_error_line(stderr: str) -> str:
    """The line of pip's output that says what failed.

    pip ends with generic lines ("ERROR: Failed building wheel", "hint: See above for
    details"); the cause is an earlier `error:` line, often inside a subprocess's output
    ("error: invalid command 'bdist_wheel'"), or pip's own ("ERROR: No matching
    distribution found for redis>=5.0").
    """
    lines = [line.strip(" │╰─>×\t") for line in stderr.splitlines()]
    causes = [line for line in lines if re.match(r"(error|ERROR)\b", line) and not PIP_GENERIC.search(line)]
    if causes:
        return causes[-1]
    rest = [line for line in lines if line and not PIP_GENERIC.search(line)
            and not line.startswith(("note:", "hint:", "WARNING:", "[end of output]"))]
    return rest[-1] if rest else "pip failed without saying why"


def run_pip(args: list[str], env: dict[str, str] | None = None) -> None:
    """`python -m pip ARGS`; raises BuildError with the line that says what failed."""
    proc = subprocess.run([sys.executable, "-m", "pip", *args], capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise BuildError(f"pip {args[0]} failed: {pip_error_line(proc.stderr + proc.stdout)}")


def pip_install(target: Path, reqs: list[str], python_version: str = PYTHON_VERSION) -> None:
    """Fetch Linux x86_64 CPython wheels (never sdists) into `target`."""
    cmd = ["install", "--quiet", "--no-compile", "--target", str(target),
           "--implementation", "cp", "--python-version", python_version, "--only-binary=:all:"]
    for platform in PLATFORMS:
        cmd += ["--platform", platform]
    run_pip(cmd + reqs)


def module_source(module: str, root: Path = ROOT) -> Path | None:
    """The file that defines `module` under `root`, if it is one of ours."""
    base = root / module.replace(".", "/")
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.exists():
            return path
    return None


def backend_modules(start: str = ENTRY_MODULE, root: Path = ROOT) -> set[Path]:
    """Every backend source file `start` can import, lazy imports inside functions included,
    with the packages' __init__.py files that importing them runs."""
    seen: set[str] = set()
    files: set[Path] = set()
    todo = [start]
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        parts = module.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts))]  # parents run their __init__
        path = module_source(module, root)
        if path is None:
            continue  # `from backend.x import name` names an attribute, not a module
        files.add(path)
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            else:
                continue
            todo += [name for name in names if name.split(".")[0] == "backend"]
    return files


def copy_backend(target: Path, root: Path = ROOT, start: str = ENTRY_MODULE) -> None:
    """The backend modules the router reaches; desktop and the local-only modules stay out."""
    for path in sorted(backend_modules(start, root)):
        dest = target / path.relative_to(root)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, dest)


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
    try:
        zipped, unzipped = build(args.out, args.python_version)
    except BuildError as exc:
        print(f"build_router_zip.py: {exc}", file=sys.stderr)
        return 1
    print(f"{args.out}: {zipped / 1024 / 1024:.1f} MiB zipped, {unzipped / 1024 / 1024:.1f} MiB unzipped")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
