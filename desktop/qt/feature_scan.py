"""A faster answer to the question PySide6 asks of every module imported after it.

PySide reads each module imported after it for the text "PySide6", to learn which modules
its `from __feature__ import snake_case` switch may apply to (PYSIDE-2029, in
shibokensupport/feature.py). It asks `inspect.getsource()`, which decodes the whole file
and splits it into lines, once for each of the ~70 modules the first screen imports after
Qt: about 6 % of a launch (bench/ui_startup.py; 31 M of the launch's 815 M instructions
under callgrind).

`scan_by_bytes()` gives PySide the same answer from the file's raw bytes, for an eighth of
the work. PySide's own check still answers for anything that is not a readable .py file
(a bundle's bytecode, a zip), and nothing changes under a PySide release without the check.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from types import ModuleType

import PySide6  # noqa: F401 (sets up shibokensupport, where the check lives)

_CHECK = "_mod_uses_pyside"


def scan_by_bytes() -> bool:
    """Let PySide look for "PySide6" in each module's bytes; False where this PySide does
    not read modules (then nothing is changed). Calling it again changes nothing."""
    feature = sys.modules.get("shibokensupport.feature")
    original: Callable[[ModuleType], bool] | None = getattr(feature, _CHECK, None)
    if original is None:
        return False
    if getattr(original, "__module__", None) == __name__:
        return True

    def uses_pyside(module: ModuleType) -> bool:
        path = getattr(module, "__file__", None)
        if isinstance(path, str) and path.endswith(".py"):
            try:
                with open(path, "rb") as source:
                    # The name is ASCII, so it is in the bytes exactly when it is in the text.
                    return b"PySide6" in source.read()
            except OSError:
                pass
        return bool(original(module))

    uses_pyside.__wrapped__ = original  # type: ignore[attr-defined]
    setattr(feature, _CHECK, uses_pyside)
    return True
