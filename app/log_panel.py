"""The engine's log messages in a panel: a logging handler that hands records to the UI thread."""

from __future__ import annotations

import logging

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QFontDatabase
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
    """Read-only, monospaced, bounded; attaches a handler to the root logger until `detach`."""

    def __init__(self) -> None:
        super().__init__()
        self.setReadOnly(True)
        self.setMaximumBlockCount(MAX_LINES)
        self.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.handler = QtLogHandler()
        self.handler.emitter.line.connect(self.appendPlainText)
        root = logging.getLogger()
        root.addHandler(self.handler)
        if root.level > logging.INFO or root.level == logging.NOTSET:
            root.setLevel(logging.INFO)

    def detach(self) -> None:
        """Stop receiving records (before the window goes away, so no thread logs into a dead widget)."""
        logging.getLogger().removeHandler(self.handler)
