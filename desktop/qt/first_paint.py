"""Run something once a window has painted for the first time.

A launch shows the window first and then does what can wait (connecting the profile,
loading the HTTP client), so a person sees the window as soon as Qt can paint it. A window
that never paints (started minimised, on a platform that skips hidden windows) still gets
the call, after FALLBACK_MS.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QEvent, QObject, QTimer
from PySide6.QtWidgets import QWidget

FALLBACK_MS = 1000


class _FirstPaint(QObject):
    def __init__(self, widget: QWidget, callback: Callable[[], None]) -> None:
        super().__init__(widget)
        self._callback: Callable[[], None] | None = callback
        widget.installEventFilter(self)
        QTimer.singleShot(FALLBACK_MS, self, self._run)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.Paint and self._callback is not None:
            # After this paint is on screen: the next turn of the event loop.
            QTimer.singleShot(0, self, self._run)
        return False

    def _run(self) -> None:
        callback, self._callback = self._callback, None
        if callback is not None:
            self.parent().removeEventFilter(self)
            callback()


def after_first_paint(widget: QWidget, callback: Callable[[], None]) -> None:
    """Call `callback` once, in the event loop turn after `widget`'s first paint (or after
    FALLBACK_MS if it does not paint). Nothing is called once the widget is deleted."""
    _FirstPaint(widget, callback)
