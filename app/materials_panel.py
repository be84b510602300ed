"""The Materials dock: find the shader's materials, pick one on the mesh, replace or blend it.

The panel only shows `MaterialsModel` state and asks it for changes; the viewport's picks reach
the model through the main window. While there is no shader at rest the controls are disabled
and a line says why (a run is going on, nothing reconstructed yet).
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QIcon, QImage, QPixmap
from PySide6.QtWidgets import (
    QButtonGroup,
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QRadioButton,
    QSlider,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from app.materials import MaterialsModel

MAX_K = 16
RADIUS_STEPS = 100  # the radius slider's range: 1..100 hundredths of the normalised cube's half side
MIN_ROWS = 4  # material rows the list shows at least


def swatch_icon(rgb: np.ndarray) -> QIcon:
    """A QIcon of an (s, s, 3) float sRGB image in [0, 1]."""
    data = np.ascontiguousarray((np.clip(rgb[..., :3], 0.0, 1.0) * 255 + 0.5).astype(np.uint8))
    h, w = data.shape[:2]
    image = QImage(data.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()  # copy: own the pixels
    return QIcon(QPixmap.fromImage(image))


def with_colour_strip(ball: np.ndarray, colour: tuple[float, float, float]) -> np.ndarray:
    """The ball with a strip of the material's mean colour on its right (a quarter of its width)."""
    strip = np.empty((ball.shape[0], max(1, ball.shape[1] // 4), 3), np.float32)
    strip[:] = colour
    return np.concatenate([ball[..., :3], strip], axis=1)


class MaterialsPanel(QWidget):
    """k (auto or a number), Find; the material list; pick mode; replace/blend controls; the edits."""

    pick_mode_changed = Signal(bool)  # clicks on the viewport pick a material while on
    edit_applied = Signal()  # an edit was added to the model: show the edited shading

    def __init__(self, model: MaterialsModel) -> None:
        super().__init__()
        self.model = model
        self.reason = QLabel(model.why_not)
        self.reason.setWordWrap(True)
        self.reason.setStyleSheet("color: palette(mid);")
        self.k = QSpinBox()
        self.k.setRange(0, MAX_K)
        self.k.setSpecialValueText("auto")
        self.k.setToolTip("Number of materials; 'auto' picks k in 2..8 by silhouette score")
        self.find = QPushButton("Find materials")
        self.find.setToolTip("Cluster the shader's features h over the surface (runs in the background)")
        self.find.clicked.connect(self._find)
        top = QHBoxLayout()
        top.addWidget(QLabel("k"))
        top.addWidget(self.k)
        top.addWidget(self.find, 1)

        self.list = QListWidget()
        self.list.setIconSize(QSize(60, 48))
        self.list.setMinimumHeight(MIN_ROWS * (48 + 6) + 2 * self.list.frameWidth())  # several materials in view
        self.list.setToolTip("Each material: a ball shaded by the shader itself, its share of the surface, its mean colour")
        self.list.currentRowChanged.connect(lambda row: self.model.select(row if row >= 0 else None))
        self.pick = QPushButton("Pick on surface")
        self.pick.setCheckable(True)
        self.pick.setToolTip("Click the mesh to select the material under the cursor and place the region centre "
                             "(Ctrl+click does the same in any mode; orbiting needs this off)")
        self.pick.toggled.connect(self.pick_mode_changed)

        self.target = QComboBox()
        self.target.setToolTip("The material the selected one becomes")
        self.weight = QSlider(Qt.Orientation.Horizontal)
        self.weight.setRange(0, 100)
        self.weight.setValue(100)
        self.weight_label = QLabel("100 %")
        self.weight.valueChanged.connect(lambda v: self.weight_label.setText(f"{v} %"))
        weight_row = QHBoxLayout()
        weight_row.addWidget(self.weight, 1)
        weight_row.addWidget(self.weight_label)
        self.everywhere = QRadioButton("all of it")
        self.everywhere.setChecked(True)
        self.in_region = QRadioButton("within radius of the picked point")
        scope = QButtonGroup(self)
        scope.addButton(self.everywhere)
        scope.addButton(self.in_region)
        self.radius = QSlider(Qt.Orientation.Horizontal)
        self.radius.setRange(1, RADIUS_STEPS)
        self.radius.setValue(20)
        self.radius_label = QLabel()
        self.radius.valueChanged.connect(lambda _: self._show_radius())
        radius_row = QHBoxLayout()
        radius_row.addWidget(self.radius, 1)
        radius_row.addWidget(self.radius_label)
        self.apply = QPushButton("Replace")
        self.apply.setToolTip("Add the edit (undo with Ctrl+Z); applied at shading time, saved to edits.json")
        self.apply.clicked.connect(self._apply)
        form = QFormLayout()
        form.addRow("Replace by", self.target)
        form.addRow("Weight", weight_row)
        form.addRow("Where", self.everywhere)
        form.addRow("", self.in_region)
        form.addRow("Radius", radius_row)

        self.edits = QListWidget()
        self.edits.setMaximumHeight(90)
        self.edits.setToolTip("The edits, applied in order (Edit → Undo / Redo)")
        self.status = QLabel("")
        self.status.setWordWrap(True)

        layout = QVBoxLayout(self)
        layout.addWidget(self.reason)
        layout.addLayout(top)
        layout.addWidget(self.list, 1)
        layout.addWidget(self.pick)
        layout.addLayout(form)
        layout.addWidget(self.apply)
        layout.addWidget(QLabel("Edits"))
        layout.addWidget(self.edits)
        layout.addWidget(self.status)

        model.availability_changed.connect(self._on_availability)
        model.busy_changed.connect(lambda busy, what: self._refresh(what if busy else None))
        model.materials_changed.connect(lambda _: self._fill())
        model.swatches_changed.connect(lambda _: self._fill())
        model.selection_changed.connect(self._on_selection)
        model.point_changed.connect(lambda _: self._refresh())
        model.edits_changed.connect(self._on_edits)
        model.message.connect(self.status.setText)
        self.everywhere.toggled.connect(lambda _: self._refresh())
        self._show_radius()
        self._refresh()

    # ---- from the model -----------------------------------------------------------------------
    def _on_availability(self, available: bool, why: str) -> None:
        self.reason.setText(why)
        self.reason.setVisible(not available)
        self._show_radius()  # its world size depends on the run's normalisation
        if not available and self.pick.isChecked():
            self.pick.setChecked(False)
        self._refresh()

    def _fill(self) -> None:
        """Rows of the current materials: swatch, id, area share, mean colour."""
        materials, swatches = self.model.materials, self.model.swatches
        self.list.blockSignals(True)
        self.list.clear()
        self.target.clear()
        if materials is not None:
            for info in materials.info():
                item = QListWidgetItem(f"{info.id}   {100 * info.area_share:5.1f} %   {info.hex}")
                if swatches is not None and info.id < len(swatches):
                    item.setIcon(swatch_icon(with_colour_strip(swatches[info.id], info.mean_color)))
                item.setToolTip(f"material {info.id}: {100 * info.area_share:.1f} % of the surface, mean colour {info.hex}")
                self.list.addItem(item)
                self.target.addItem(f"{info.id}  {info.hex}", info.id)
                if swatches is not None and info.id < len(swatches):
                    self.target.setItemIcon(self.target.count() - 1, swatch_icon(swatches[info.id]))
        self.list.blockSignals(False)
        self._on_selection(self.model.selected)

    def _on_selection(self, material: int | None) -> None:
        row = -1 if material is None else material
        if self.list.currentRow() != row:
            self.list.blockSignals(True)
            self.list.setCurrentRow(row)
            self.list.blockSignals(False)
        if material is not None and self.target.currentData() == material and self.target.count() > 1:
            self.target.setCurrentIndex((material + 1) % self.target.count())  # a target other than itself
        self._refresh()

    def _on_edits(self, edits) -> None:
        self.edits.clear()
        for op in edits.operations:
            where = "everywhere" if op.region is None else f"r = {op.region.radius:.3g}"
            self.edits.addItem(f"{op.source} → {op.target}  {100 * op.weight:.0f} %  {where}")
        self._refresh()

    def _refresh(self, busy: str | None = None) -> None:
        """Enable what makes sense now; say what runs."""
        model = self.model
        usable = model.available and not model.busy
        have = usable and model.materials is not None
        self.k.setEnabled(usable)
        self.find.setEnabled(usable)
        self.list.setEnabled(model.materials is not None and model.available)
        self.pick.setEnabled(have)
        selected = have and model.selected is not None
        for widget in (self.target, self.weight, self.everywhere, self.apply):
            widget.setEnabled(selected)
        self.in_region.setEnabled(selected and model.point is not None)
        if not self.in_region.isEnabled() and self.in_region.isChecked():
            self.everywhere.setChecked(True)
        self.radius.setEnabled(selected and self.in_region.isChecked())
        if busy:
            self.status.setText(busy)

    # ---- to the model -------------------------------------------------------------------------
    def k_value(self) -> int | None:
        return None if self.k.value() == 0 else self.k.value()

    def _find(self) -> None:
        self.model.discover(self.k_value())

    def radius_world(self) -> float:
        """The slider's radius in world units (a share of the normalised cube, scaled back)."""
        scale = float(self.model.run.normalization[1]) if self.model.run is not None else 1.0
        return self.radius.value() / RADIUS_STEPS / scale

    def _show_radius(self) -> None:
        self.radius_label.setText(f"{self.radius_world():.3g}")

    def _apply(self) -> None:
        target = self.target.currentData()
        if target is None:
            return
        radius = self.radius_world() if self.in_region.isChecked() else None
        if self.model.replace(int(target), self.weight.value() / 100, radius):
            self.edit_applied.emit()
