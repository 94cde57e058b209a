"""Guards the PySide6 pin: 6.12.0's Signal.emit() drops a reference to `True` on every call,
and on Python 3.11 the interpreter aborts after a few hundred emits ("bool_dealloc")."""

from __future__ import annotations

import sys

from PySide6.QtCore import QObject, Signal


class _Source(QObject):
    changed = Signal(object)


def test_emit_does_not_leak_true() -> None:
    source = _Source()
    got: list[object] = []
    source.changed.connect(got.append)
    before = sys.getrefcount(True)
    for i in range(200):
        source.changed.emit(i)
    assert len(got) == 200
    # A leaking build loses 200 references here; allow for unrelated noise.
    assert abs(sys.getrefcount(True) - before) < 50
