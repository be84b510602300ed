"""The viewport's toolbar: shading mode, shading path, wireframe, camera frusta, photo opacity, reset.

A row that wraps (`app.flow_layout`), not a QToolBar: every control stays visible at a usable
size, and a narrow window costs a second row rather than a » menu or a wider minimum width. Its
controls write the viewport's `app.view_state.ViewState` and follow it, so they show what the keys
and menus chose too.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QStandardItemModel
from PySide6.QtWidgets import QCheckBox, QComboBox, QHBoxLayout, QLabel, QPushButton, QSlider, QWidget

from app.flow_layout import FlowLayout
from app.view_state import MODES
from app.viewport import Viewport

SLIDER_WIDTH = 110  # the photo opacity slider, px


def _labelled(text: str, widget: QWidget) -> QWidget:
    """A label and its control as one piece, so a wrap never separates them."""
    holder = QWidget()
    row = QHBoxLayout(holder)
    row.setContentsMargins(0, 0, 0, 0)
    row.addWidget(QLabel(text))
    row.addWidget(widget)
    return holder


class ViewToolbar(QWidget):
    """Controls of `viewport` and of its view state."""

    def __init__(self, viewport: Viewport) -> None:
        super().__init__()
        self.viewport = viewport
        state = viewport.view_state
        self.mode_box = QComboBox()
        for mode in MODES:
            self.mode_box.addItem(mode, mode)
        self.mode_box.setCurrentIndex(MODES.index(state.mode))
        self.mode_box.setToolTip("Shading mode (keys 1–6); 'features' and 'materials' come from the Materials panel")
        self.mode_box.currentIndexChanged.connect(lambda _: state.set_mode(self.mode_box.currentData()))
        state.mode_changed.connect(lambda mode: self.mode_box.setCurrentIndex(MODES.index(mode)))
        self.path_box = QComboBox()
        self.path_box.setToolTip("Shading path of the neural modes: CUDA–GL interop, GLSL compute shader, or CPU")
        self.path_box.activated.connect(lambda index: viewport.set_path(self.path_box.itemData(index)))
        viewport.paths_changed.connect(self.show_paths)
        self.wire_box = QCheckBox("wireframe")
        self.wire_box.setChecked(state.wireframe)
        self.wire_box.setToolTip("Wireframe overlay (W)")
        self.wire_box.toggled.connect(state.set_wireframe)
        state.wireframe_changed.connect(self.wire_box.setChecked)
        self.frusta_box = QCheckBox("cameras")
        self.frusta_box.setChecked(state.frusta)
        self.frusta_box.setToolTip("Camera frusta of the input views (C)")
        self.frusta_box.toggled.connect(state.set_frusta)
        state.frusta_changed.connect(self.frusta_box.setChecked)
        self.opacity = QSlider(Qt.Orientation.Horizontal)
        self.opacity.setRange(0, 100)
        self.opacity.setValue(round(100 * state.opacity))
        self.opacity.setFixedWidth(SLIDER_WIDTH)
        self.opacity.setToolTip("Opacity of the input photo over the render when snapped to a view")
        self.opacity.valueChanged.connect(lambda v: state.set_opacity(v / 100))
        state.opacity_changed.connect(lambda opacity: self.opacity.setValue(round(100 * opacity)))
        self.reset = QPushButton("Reset view")
        self.reset.setToolTip("Frame the object again (R)")
        self.reset.clicked.connect(viewport.reset_camera)
        layout = FlowLayout(self)
        layout.setContentsMargins(6, 3, 6, 3)
        for widget in (_labelled("Mode", self.mode_box), _labelled("Shading", self.path_box), self.wire_box,
                       self.frusta_box, _labelled("Photo", self.opacity), self.reset):
            layout.addWidget(widget)

    def show_paths(self) -> None:
        """The Shading box: every path, the unusable ones disabled with their reason as tooltip."""
        from render.viewer import PATHS

        usable, reasons = self.viewport.paths()
        box = self.path_box
        box.blockSignals(True)
        box.clear()
        model = box.model()
        assert isinstance(model, QStandardItemModel)
        for name in PATHS:
            box.addItem(name, name)
            item = model.item(box.count() - 1)
            if name not in usable:
                item.setEnabled(False)
                item.setToolTip(reasons.get(name, "not available with this OpenGL context"))
        if self.viewport.path is not None:
            box.setCurrentIndex(box.findData(self.viewport.path))
        box.setEnabled(bool(usable))
        box.blockSignals(False)
