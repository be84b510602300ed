"""Thumbnails of the input views with their masks overlaid (background darkened)."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QIcon, QImage, QPixmap
from PySide6.QtWidgets import QListWidget, QListWidgetItem

from recon.data import Scene, View

THUMB = 128


def thumbnail(view: View, size: int = THUMB) -> QImage:
    """An RGB QImage at most `size` px on its long side, background dimmed by the mask."""
    step = max(1, int(np.ceil(max(view.image.shape[:2]) / size)))
    image = view.image[::step, ::step]
    mask = view.mask[::step, ::step, None]
    rgb = np.ascontiguousarray((image * (0.25 + 0.75 * mask) * 255).astype(np.uint8))
    h, w = rgb.shape[:2]
    return QImage(rgb.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()


class ViewsPanel(QListWidget):
    """Lists a scene's views; one item per view, carrying its index in Qt.UserRole."""

    def __init__(self) -> None:
        super().__init__()
        self.setViewMode(QListWidget.ViewMode.IconMode)
        self.setIconSize(QSize(THUMB, THUMB))
        self.setResizeMode(QListWidget.ResizeMode.Adjust)
        self.setMovement(QListWidget.Movement.Static)
        self.setSpacing(4)

    def show_scene(self, scene: Scene | None) -> None:
        self.clear()
        if scene is None:
            return
        for index, view in enumerate(scene.views):
            item = QListWidgetItem(QIcon(QPixmap.fromImage(thumbnail(view))), view.name)
            item.setData(Qt.ItemDataRole.UserRole, index)
            item.setToolTip(f"{view.name} — {view.camera.width}×{view.camera.height}")
            self.addItem(item)
