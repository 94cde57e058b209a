"""ruff and mypy, as configured in pyproject.toml, are part of the suite so CI enforces them."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_ruff_is_clean() -> None:
    result = subprocess.run([sys.executable, "-m", "ruff", "check", "."], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_is_clean_on_the_qt_free_code() -> None:
    result = subprocess.run([sys.executable, "-m", "mypy"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def imported_modules(path: Path) -> set[str]:
    """Every module a file imports, at any depth (function-level imports included)."""
    tree = ast.parse(path.read_text(), str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_backend_never_imports_the_desktop_app() -> None:
    # The router zip and the GPU worker's package hold backend/ only: one such import would
    # break them at run time (and make the backend ↔ desktop cycle the command had).
    offenders = {str(path.relative_to(ROOT)): sorted(name for name in imported_modules(path)
                                                     if name == "desktop" or name.startswith("desktop."))
                 for path in sorted((ROOT / "backend").rglob("*.py"))}
    assert {path: names for path, names in offenders.items() if names} == {}


def test_the_import_check_sees_function_level_imports(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("def f():\n    from desktop.app import main\n    import desktop.cli\n")
    assert imported_modules(sample) == {"desktop.app", "desktop.cli"}


def bundle_excludes() -> set[str]:
    """The modules packaging/tinyllama.spec leaves out of the bundle (its EXCLUDES list)."""
    tree = ast.parse((ROOT / "packaging" / "tinyllama.spec").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "EXCLUDES" for t in node.targets):
            return set(ast.literal_eval(node.value))
    raise AssertionError("packaging/tinyllama.spec has no EXCLUDES list")


def test_the_bundle_keeps_every_module_the_app_imports() -> None:
    # The frozen app died at start with "No module named 'PySide6.QtNetwork'" once the
    # single-instance socket used it: the spec still excluded it as unused.
    excluded = bundle_excludes()
    assert "PySide6.QtSvg" in excluded  # the list was read
    used = {str(path.relative_to(ROOT)): sorted(name for name in imported_modules(path)
                                                if name in excluded or name.split(".")[0] in excluded)
            for path in sorted((ROOT / "desktop").rglob("*.py")) + sorted((ROOT / "backend").rglob("*.py"))}
    assert {path: names for path, names in used.items() if names} == {}
