"""The side list of chats: search, new, rename (double-click or F2), delete (Delete), export.

A search that finds nothing says so in place of the list, naming what was searched.
"""

from __future__ import annotations

from PySide6 import QtCore  # its Qt namespace only once used: see desktop.qt.properties
from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QMenu,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from desktop.core.models import Conversation
from desktop.qt.properties import set_properties

_ID = 0x0100  # Qt.ItemDataRole.UserRole, the first role for an app's data (see desktop.qt.properties)


class ConversationList(QWidget):
    """Shows conversations and asks the window to act on them through signals."""

    selected = Signal(int)
    chosen = Signal()  # a chat was clicked or activated (Enter): typing goes to the prompt
    new_requested = Signal()
    search_changed = Signal(str)
    rename_requested = Signal(int, str)
    delete_requested = Signal(int)
    export_requested = Signal(int, str)  # conversation id, "md" | "json"

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.search = QLineEdit(self)
        self.search.setPlaceholderText("Search chats")
        self.search.setClearButtonEnabled(True)
        self.search.textChanged.connect(self.search_changed)
        self.new_button = QPushButton("New chat", self)
        self.new_button.clicked.connect(self.new_requested)
        self.items = QListWidget(self)
        set_properties(self.items, editTriggers="DoubleClicked|EditKeyPressed",
                       horizontalScrollBarPolicy="ScrollBarAlwaysOff", textElideMode="ElideRight",
                       contextMenuPolicy="CustomContextMenu")
        self.items.customContextMenuRequested.connect(self._menu)
        self.items.currentItemChanged.connect(self._current_changed)
        self.items.itemChanged.connect(self._edited)
        self.items.itemClicked.connect(lambda _item: self.chosen.emit())
        self.items.itemActivated.connect(lambda _item: self.chosen.emit())
        self.no_match = QLabel(self)
        self.no_match.setWordWrap(True)
        # At the top of the room the list leaves, where the first match would be; the search
        # text is shown as typed.
        set_properties(self.no_match, alignment="AlignTop|AlignHCenter", textFormat="PlainText")
        self.no_match.setContentsMargins(6, 12, 6, 0)
        self.no_match.setVisible(False)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 0, 6)
        layout.addWidget(self.new_button)
        layout.addWidget(self.search)
        layout.addWidget(self.items, 1)
        layout.addWidget(self.no_match, 1)
        self._filling = False

    def set_conversations(self, conversations: list[Conversation], current: int | None,
                          search: str = "") -> None:
        """List `conversations`, `current` selected; `search` is what they were found by."""
        nothing = bool(search) and not conversations
        self.no_match.setText(f"No chats match “{search}”" if nothing else "")
        self.no_match.setVisible(nothing)
        self.items.setVisible(not nothing)
        self._filling = True
        self.items.clear()
        for conv in conversations:
            item = QListWidgetItem(conv.title)
            item.setData(_ID, conv.id)
            item.setFlags(item.flags() | QtCore.Qt.ItemFlag.ItemIsEditable)
            self.items.addItem(item)
            if conv.id == current:
                self.items.setCurrentItem(item)
        self._filling = False

    def ids(self) -> list[int]:
        return [self.items.item(i).data(_ID) for i in range(self.items.count())]

    def current_id(self) -> int | None:
        item = self.items.currentItem()
        return item.data(_ID) if item else None

    def _current_changed(self, item: QListWidgetItem | None, _previous: object) -> None:
        if item is not None and not self._filling:
            self.selected.emit(item.data(_ID))

    def _edited(self, item: QListWidgetItem) -> None:
        if not self._filling:
            self.rename_requested.emit(item.data(_ID), item.text())

    def _menu(self, pos: object) -> None:
        item = self.items.itemAt(pos)  # type: ignore[arg-type]
        if item is None:
            return
        conv_id = item.data(_ID)
        menu = QMenu(self)
        menu.addAction("Rename", lambda: self.items.editItem(item))
        menu.addAction("Export as Markdown…", lambda: self.export_requested.emit(conv_id, "md"))
        menu.addAction("Export as JSON…", lambda: self.export_requested.emit(conv_id, "json"))
        menu.addSeparator()
        menu.addAction("Delete", lambda: self.delete_requested.emit(conv_id))
        menu.exec(self.items.viewport().mapToGlobal(pos))  # type: ignore[arg-type]
