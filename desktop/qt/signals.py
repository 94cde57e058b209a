"""`emit(signal, *args)`: Signal.emit, minus a refcount bug of PySide6 6.12.0.

PySide6 6.12.0's `Signal.emit()` returns `True` without taking a reference to it, so every
emit from Python lowers `True`'s refcount by one. On Python 3.12+ `True` is immortal and
nothing happens; on 3.11 the count reaches zero after a few thousand emits and the
interpreter aborts ("bool_dealloc: deallocating True or False"). The app emits several
signals per poll, so it would die within minutes. We measure the bug once and give the
reference back after each emit; on a fixed PySide6 this is a plain emit.
"""

from __future__ import annotations

import ctypes
import sys
from typing import Any

from PySide6.QtCore import QObject, Signal

_leaks: bool | None = None


class _Probe(QObject):
    ping = Signal()


def _emit_leaks_true() -> bool:
    probe = _Probe()
    before = sys.getrefcount(True)
    probe.ping.emit()
    leaked = sys.getrefcount(True) < before
    if leaked:
        ctypes.pythonapi.Py_IncRef(ctypes.py_object(True))
    return leaked


def emit(signal: Any, *args: Any) -> None:
    """Emit `signal` with `args` (use this instead of `signal.emit(...)` everywhere)."""
    global _leaks
    if _leaks is None:
        _leaks = _emit_leaks_true()
    signal.emit(*args)
    if _leaks:
        ctypes.pythonapi.Py_IncRef(ctypes.py_object(True))
