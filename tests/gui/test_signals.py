"""desktop.qt.signals.emit keeps `True` alive across many emits (PySide6 6.12.0 bug)."""

from __future__ import annotations

import sys

from PySide6.QtCore import QObject, Signal

from desktop.qt.signals import emit


class _Source(QObject):
    changed = Signal(object)


def test_emit_keeps_true_refcount_steady() -> None:
    source = _Source()
    got: list[object] = []
    source.changed.connect(got.append)
    emit(source.changed, 0)  # the first call measures the bug
    before = sys.getrefcount(True)
    for i in range(5000):
        emit(source.changed, i)
    # Unpatched, 5000 emits would take 5000 references away; allow for unrelated noise.
    assert abs(sys.getrefcount(True) - before) < 50
    assert len(got) == 5001
