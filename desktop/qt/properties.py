"""Set Qt enum and flag properties by their keys' names, as a .ui file does.

    set_properties(label, alignment="AlignTop|AlignHCenter", textFormat="PlainText")

The widgets built before the window's first paint use this instead of `Qt.…` values: the
first use of the `Qt` namespace makes PySide build all its Python enums (93 of them, with
1195 members: about 13 ms, a seventh of a bare window's start, bench/ui_startup.py), while
Qt converts a key's name to its value itself. After the first paint, code uses `Qt` as usual.
"""

from __future__ import annotations

from PySide6.QtCore import QObject


def set_properties(obj: QObject, **keys: str) -> None:
    """Set each Qt property to the enum key (or `|`-joined flag keys) named; a name Qt does
    not know, for the property or for its value, is a ValueError."""
    meta = obj.metaObject()
    for name, key in keys.items():
        if meta.indexOfProperty(name) < 0 or not obj.setProperty(name, key):
            raise ValueError(f"{meta.className()} has no property {name} that takes {key!r}")
