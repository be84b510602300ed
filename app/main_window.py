"""The main window: open a dataset (drop, File → Open, recent list, demo) and list its views."""

from __future__ import annotations

import logging
from pathlib import Path

from PySide6.QtCore import QSettings, Qt, QUrl
from PySide6.QtGui import QAction, QCloseEvent, QDragEnterEvent, QDropEvent, QKeySequence
from PySide6.QtWidgets import QFileDialog, QLabel, QMainWindow, QMessageBox

from app.dataset_loader import DatasetLoader
from app.views_panel import ViewsPanel
from recon.data import Scene

log = logging.getLogger(__name__)

MAX_RECENT = 8


class MainWindow(QMainWindow):
    """Owns the current Scene; widgets show it, the loader replaces it."""

    def __init__(self, settings: QSettings | None = None) -> None:
        super().__init__()
        self.settings = settings or QSettings("reconstruct", "reconstruct-gui")
        self.scene: Scene | None = None
        self.last_error: str | None = None
        self.setWindowTitle("reconstruct")
        self.setAcceptDrops(True)

        self.views_panel = ViewsPanel()
        self.setCentralWidget(self.views_panel)
        self.status = QLabel("Drop a dataset folder or file here, or use File → Open.")
        self.statusBar().addWidget(self.status, 1)

        self.loader = DatasetLoader(self)
        self.loader.loaded.connect(self._on_loaded)
        self.loader.failed.connect(self._on_failed)
        self._build_menus()
        geometry = self.settings.value("window/geometry")
        if geometry is not None:
            self.restoreGeometry(geometry)
        else:
            self.resize(1100, 750)

    # ---- menus -------------------------------------------------------------------------------
    def _build_menus(self) -> None:
        menu = self.menuBar().addMenu("&File")
        for text, shortcut, slot in (
            ("Open &Folder…", QKeySequence.StandardKey.Open, self._ask_folder),
            ("Open &File…", None, self._ask_file),
            ("Open &Demo", None, self.open_demo),
        ):
            action = QAction(text, self)
            if shortcut is not None:
                action.setShortcut(shortcut)
            action.triggered.connect(slot)
            menu.addAction(action)
        self.recent_menu = menu.addMenu("&Recent")
        self._refresh_recent()
        menu.addSeparator()
        quit_action = QAction("&Quit", self)
        quit_action.setShortcut(QKeySequence.StandardKey.Quit)
        quit_action.triggered.connect(self.close)
        menu.addAction(quit_action)

    def _ask_folder(self) -> None:
        start = str(self.settings.value("paths/last_folder", str(Path.home())))
        folder = QFileDialog.getExistingDirectory(self, "Open dataset folder", start)
        if folder:
            self.open_dataset(Path(folder))

    def _ask_file(self) -> None:
        start = str(self.settings.value("paths/last_folder", str(Path.home())))
        file, _ = QFileDialog.getOpenFileName(
            self, "Open dataset file", start, "Dataset files (*.json *.npz *.txt *.bin);;All files (*)"
        )
        if file:
            self.open_dataset(Path(file))

    def _recent(self) -> list[str]:
        value = self.settings.value("paths/recent", [])
        return [value] if isinstance(value, str) else list(value or [])

    def _refresh_recent(self) -> None:
        self.recent_menu.clear()
        for entry in self._recent():
            action = QAction(entry, self)
            action.triggered.connect(lambda _=False, p=entry: self.open_dataset(Path(p)))
            self.recent_menu.addAction(action)
        self.recent_menu.setEnabled(bool(self._recent()))

    def _remember(self, path: Path) -> None:
        entries = [str(path)] + [e for e in self._recent() if e != str(path)]
        self.settings.setValue("paths/recent", entries[:MAX_RECENT])
        self.settings.setValue("paths/last_folder", str(path if path.is_dir() else path.parent))
        self._refresh_recent()

    # ---- opening -----------------------------------------------------------------------------
    def open_demo(self) -> None:
        from recon.demo import demo_dataset

        self.status.setText("Preparing the demo scene (rendered once, then cached)…")
        self.open_dataset(demo_dataset())

    def open_dataset(self, path: Path) -> None:
        """Start loading `path` in the background; the current scene stays until the new one is ready."""
        if self.loader.busy:
            self._show_error(f"{path}: another dataset is still loading; try again when it is done")
            return
        self.status.setText(f"Loading {path} …")
        self.loader.start(Path(path))

    def _on_loaded(self, scene: Scene) -> None:
        self.scene = scene
        self.last_error = None
        self._remember(scene.source)
        self.views_panel.show_scene(scene)
        width, height = scene.resolution
        self.status.setText(
            f"{scene.source.name}: {scene.format}, {len(scene.views)} views at {width}×{height}, "
            f"bounding box {scene.bbox_source}"
        )
        self.setWindowTitle(f"reconstruct — {scene.source.name}")

    def _on_failed(self, message: str) -> None:
        self._show_error(message)

    def _show_error(self, message: str) -> None:
        self.last_error = message
        log.error("%s", message)
        self.status.setText("Could not open the dataset (see the message).")
        box = QMessageBox(QMessageBox.Icon.Warning, "Cannot open dataset", message, parent=self)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.open()

    # ---- drag and drop -----------------------------------------------------------------------
    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        urls: list[QUrl] = event.mimeData().urls()
        local = [Path(u.toLocalFile()) for u in urls if u.isLocalFile()]
        if not local:
            self._show_error("the dropped item is not a local file or folder")
            return
        event.acceptProposedAction()
        self.open_dataset(local[0])

    def closeEvent(self, event: QCloseEvent) -> None:
        self.settings.setValue("window/geometry", self.saveGeometry())
        self.loader.wait()
        super().closeEvent(event)
