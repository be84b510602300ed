"""The engine's log messages in a panel: a logging handler that hands records to the UI thread."""

from __future__ import annotations

import logging

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QFontDatabase, QKeyEvent, QResizeEvent, QShowEvent, QWheelEvent
from PySide6.QtWidgets import QPlainTextEdit

MAX_LINES = 5000


class _Emitter(QObject):
    line = Signal(str)


class QtLogHandler(logging.Handler):
    """Formats records in whatever thread logs them; the text reaches the panel through a queued signal."""

    def __init__(self, level: int = logging.INFO) -> None:
        super().__init__(level)
        self.emitter = _Emitter()
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.emitter.line.emit(self.format(record))
        except RuntimeError:  # the panel is gone (shutdown): drop the line rather than raise in a worker
            pass


class LogPanel(QPlainTextEdit):
    """Read-only, monospaced, bounded; attaches a handler to the root logger until `detach`.

    It follows new lines unless the user scrolled away from the bottom, and resumes following
    when they scroll back. Qt's own rule (follow only while the last line is in view of a visible
    widget) loses the bottom for good when lines arrive before the panel is first shown or while
    it has no height, so only the user's own scrolling (scroll bar, wheel, keys) decides here.
    """

    def __init__(self) -> None:
        super().__init__()
        self.setReadOnly(True)
        self.setMaximumBlockCount(MAX_LINES)
        self.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.following = True
        self.verticalScrollBar().actionTriggered.connect(self._on_scroll_bar_action)
        self.handler = QtLogHandler()
        self.handler.emitter.line.connect(self.add_line)
        root = logging.getLogger()
        root.addHandler(self.handler)
        if root.level > logging.INFO or root.level == logging.NOTSET:
            root.setLevel(logging.INFO)

    def add_line(self, line: str) -> None:
        self.appendPlainText(line)
        self._follow()

    def _on_scroll_bar_action(self, _action: int) -> None:
        """The user moved the scroll bar: follow again only if it ends at the bottom."""
        bar = self.verticalScrollBar()
        self.following = bar.sliderPosition() >= bar.maximum()  # where it moves to; value() is still the old one

    def _user_scrolled(self) -> None:
        bar = self.verticalScrollBar()
        self.following = bar.value() >= bar.maximum()

    def keyPressEvent(self, event: QKeyEvent) -> None:
        super().keyPressEvent(event)
        self._user_scrolled()

    def wheelEvent(self, event: QWheelEvent) -> None:
        super().wheelEvent(event)
        self._user_scrolled()

    def _follow(self) -> None:
        if self.following:
            bar = self.verticalScrollBar()
            bar.setValue(bar.maximum())

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        self._follow()

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self._follow()

    def detach(self) -> None:
        """Stop receiving records (before the window goes away, so no thread logs into a dead widget)."""
        logging.getLogger().removeHandler(self.handler)
