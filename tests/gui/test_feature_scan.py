"""scan_by_bytes: PySide's question of each module imported after it ("does it use PySide6?"),
answered from the file's bytes, with PySide's own answer for every module."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import desktop.core.history
import desktop.views.main_window
from desktop.qt.feature_scan import scan_by_bytes

feature = sys.modules["shibokensupport.feature"]


@pytest.fixture
def installed() -> None:
    assert scan_by_bytes()  # this PySide reads modules (its check is there to replace)
    assert scan_by_bytes()  # and a second call keeps the one installed
    assert feature._mod_uses_pyside.__module__ == "desktop.qt.feature_scan"


@pytest.fixture
def modules_dir(tmp_path: Path) -> Iterator[Path]:
    sys.path.insert(0, str(tmp_path))
    yield tmp_path
    sys.path.remove(str(tmp_path))
    for name in ("uses_qt_here", "plain_here"):
        sys.modules.pop(name, None)
        feature.pyside_feature_dict.pop(name, None)


@pytest.mark.usefixtures("installed")
def test_every_loaded_module_gets_the_answer_pyside_itself_gives() -> None:
    check, pysides_own = feature._mod_uses_pyside, feature._mod_uses_pyside.__wrapped__
    answers = {name: check(module) for name, module in list(sys.modules.items())}
    assert answers == {name: pysides_own(module) for name, module in list(sys.modules.items())}
    # Both answers, from source files, extension modules and built-ins alike.
    assert answers[desktop.views.main_window.__name__] is True
    assert answers[desktop.core.history.__name__] is False
    assert answers["PySide6.QtCore"] is False and answers["sys"] is False


@pytest.mark.usefixtures("installed")
def test_a_module_imported_afterwards_is_recorded_as_pyside_would(modules_dir: Path) -> None:
    (modules_dir / "uses_qt_here.py").write_text("from PySide6 import QtCore\n", encoding="utf-8")
    (modules_dir / "plain_here.py").write_text("# no Qt in here\nVALUE = 'ü'\n", encoding="utf-8")
    # An import statement's way in, which PySide hooks (importlib.import_module goes around it).
    __import__("uses_qt_here")
    __import__("plain_here")
    # PySide's marks: 0, "switch its features (none)"; -1, "not a PySide module, ignore it".
    assert feature.pyside_feature_dict["uses_qt_here"] == 0
    assert feature.pyside_feature_dict["plain_here"] == -1
