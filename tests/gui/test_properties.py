"""set_properties: Qt enum and flag properties set by their keys' names, on real widgets."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import QLabel, QListWidget
from pytestqt.qtbot import QtBot

from desktop.qt.properties import set_properties


def test_keys_and_joined_flags_set_what_the_enums_would(qtbot: QtBot) -> None:
    label, items = QLabel("x"), QListWidget()
    qtbot.addWidget(label)
    qtbot.addWidget(items)
    shortcut = QShortcut(QKeySequence("End"), items)
    set_properties(label, alignment="AlignTop|AlignHCenter", textFormat="PlainText")
    set_properties(items, horizontalScrollBarPolicy="ScrollBarAlwaysOff", textElideMode="ElideRight")
    set_properties(shortcut, context="WidgetShortcut")
    assert label.alignment() == Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignHCenter
    assert label.textFormat() == Qt.TextFormat.PlainText
    assert items.horizontalScrollBarPolicy() == Qt.ScrollBarPolicy.ScrollBarAlwaysOff
    assert items.textElideMode() == Qt.TextElideMode.ElideRight
    assert shortcut.context() == Qt.ShortcutContext.WidgetShortcut


@pytest.mark.parametrize(("name", "key"), [("alignment", "AlignMiddleish"), ("alignmnet", "AlignTop")])
def test_a_name_qt_does_not_know_is_an_error_not_a_silent_no_op(qtbot: QtBot, name: str, key: str) -> None:
    label = QLabel("x")
    qtbot.addWidget(label)
    with pytest.raises(ValueError, match=f"QLabel has no property {name} that takes '{key}'"):
        set_properties(label, **{name: key})
    assert label.alignment() == Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter  # unchanged
