"""File → Recent: the datasets and runs opened last, kept in the settings across sessions."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QSettings, Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QMenu, QWidget

MAX_RECENT = 8


class RecentMenu(QMenu):
    """Newest first, at most `MAX_RECENT`; also the folder the open dialogs start in (the last one
    opened from), since both are what the user opened last."""

    chosen = Signal(Path)

    def __init__(self, settings: QSettings, parent: QWidget | None = None) -> None:
        super().__init__("&Recent", parent)
        self.settings = settings
        self._refresh()

    def entries(self) -> list[str]:
        value = self.settings.value("paths/recent", [])
        return [value] if isinstance(value, str) else list(value or [])

    def last_folder(self) -> str:
        return str(self.settings.value("paths/last_folder", str(Path.home())))

    def remember(self, path: Path) -> None:
        """Put `path` first (once) and make its folder the dialogs' start."""
        entries = [str(path)] + [e for e in self.entries() if e != str(path)]
        self.settings.setValue("paths/recent", entries[:MAX_RECENT])
        self.settings.setValue("paths/last_folder", str(path if path.is_dir() else path.parent))
        self._refresh()

    def _refresh(self) -> None:
        self.clear()
        for entry in self.entries():
            action = QAction(entry, self)
            action.triggered.connect(lambda _=False, p=entry: self.chosen.emit(Path(p)))
            self.addAction(action)
        self.setEnabled(bool(self.entries()))
