"""Dialogs that fit the screen they open on.

At 200 % on a 1400×900 screen (700×450 logical pixels) the model and profile dialogs were
taller than the screen, with their OK buttons below its edge. Their bodies scroll instead,
and they open no larger than the screen's available area.
"""

from __future__ import annotations

from PySide6.QtGui import QGuiApplication, QScreen
from PySide6.QtWidgets import QFrame, QScrollArea, QVBoxLayout, QWidget

# The window manager's frame and title bar around a window (logical px), left free on screen:
# the real frame is known only once the window manager has drawn it.
FRAME_ALLOWANCE_PX = (16, 48)


def _screen_of(window: QWidget) -> QScreen | None:
    """The screen a window opens on: its parent's, else its own, else the primary one."""
    parent = window.parentWidget()
    return (parent.screen() if parent is not None else None) or window.screen() or QGuiApplication.primaryScreen()


def scroll_body(parent: QWidget) -> tuple[QScrollArea, QVBoxLayout]:
    """A frameless scroll area for a dialog's body, and the layout to fill it with."""
    area = QScrollArea(parent)
    area.setWidgetResizable(True)
    area.setFrameShape(QFrame.Shape.NoFrame)
    body = QWidget(area)
    layout = QVBoxLayout(body)
    layout.setContentsMargins(0, 0, 0, 0)
    area.setWidget(body)
    return area, layout


def fit_dialog(dialog: QWidget, area: QScrollArea) -> None:
    """Size `dialog` to show all of `area`'s body where the screen has room, less where not
    (the body then scrolls; the buttons outside it stay in reach). Call before it shows: Qt
    then places it over its parent and inside the screen with this size."""
    screen = _screen_of(dialog)
    if screen is None:
        return
    room = screen.availableGeometry()
    body = area.widget().sizeHint()
    # What the dialog needs besides the scroll area: its buttons, labels and margins.
    extra_w = max(0, dialog.sizeHint().width() - area.sizeHint().width())
    extra_h = max(0, dialog.sizeHint().height() - area.sizeHint().height())
    max_w, max_h = room.width() - FRAME_ALLOWANCE_PX[0], room.height() - FRAME_ALLOWANCE_PX[1]
    height = min(body.height() + extra_h, max_h)
    bar = area.verticalScrollBar().sizeHint().width() if body.height() + extra_h > max_h else 0
    width = min(max(body.width() + extra_w, dialog.sizeHint().width()) + bar, max_w)
    dialog.resize(width, height)


def resize_within_screen(window: QWidget, width: int, height: int) -> None:
    """`window.resize(width, height)`, but no larger than its screen's available area (the
    deploy wizard's 900×620 is 1800×1240 pixels at 200 %: more than a 1400×900 screen)."""
    screen = _screen_of(window)
    if screen is not None:
        room = screen.availableGeometry()
        width = min(width, room.width() - FRAME_ALLOWANCE_PX[0])
        height = min(height, room.height() - FRAME_ALLOWANCE_PX[1])
    window.resize(width, height)
