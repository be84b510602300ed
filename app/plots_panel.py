"""Loss terms against iteration on a log scale (pyqtgraph), plus a PSNR curve when one is computed.

The curves are the terms the step records carry, whatever the method: one appears with the
first record that has it.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtWidgets import QVBoxLayout, QWidget

from recon.methods.session import StepRecord

COLOURS = {"total": "w", "silhouette": "c", "shading": "y", "laplacian": "m", "normal": "g"}


class PlotsPanel(QWidget):
    """One curve per loss term and the total; curves are redrawn once per batch of step records."""

    def __init__(self) -> None:
        super().__init__()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.loss_plot = pg.PlotWidget(title="Loss (weighted terms)")
        self.loss_plot.setLogMode(x=False, y=True)
        self.loss_plot.setLabel("bottom", "iteration")
        self.loss_plot.addLegend(offset=(-5, 5))
        self.loss_plot.showGrid(x=True, y=True, alpha=0.2)
        self.psnr_plot = pg.PlotWidget(title="PSNR (dB)")
        self.psnr_plot.setLabel("bottom", "iteration")
        self.psnr_plot.setMaximumHeight(160)
        self.psnr_plot.hide()  # until a PSNR is computed
        layout.addWidget(self.loss_plot, 3)
        layout.addWidget(self.psnr_plot, 1)
        self.curves: dict[str, pg.PlotDataItem] = {}
        self._curve("total")
        self.psnr_curve = self.psnr_plot.plot([], [], pen=pg.mkPen("w", width=1.5), symbol="o", symbolSize=5)
        self.clear()

    def _curve(self, name: str) -> pg.PlotDataItem:
        if name not in self.curves:
            self.curves[name] = self.loss_plot.plot([], [], name=name, pen=pg.mkPen(COLOURS.get(name, "w"), width=1.5))
        return self.curves[name]

    def clear(self) -> None:
        self.iterations: list[int] = []
        self.values: dict[str, list[float]] = {name: [] for name in self.curves}
        self.psnr: list[tuple[int, float]] = []
        for curve in self.curves.values():
            curve.setData([], [])
        self.psnr_curve.setData([], [])
        self.psnr_plot.hide()

    def add_steps(self, records: list[StepRecord]) -> None:
        for record in records:
            for name in record.losses:
                if name not in self.values:  # a term seen first now: no value at the earlier iterations
                    self._curve(name)
                    self.values[name] = [np.nan] * len(self.iterations)
            self.iterations.append(record.iteration)
            self.values["total"].append(record.total)
            for name in self.values:
                if name != "total":
                    self.values[name].append(record.losses.get(name, np.nan))
        x = np.asarray(self.iterations, dtype=np.float64)
        for name, curve in self.curves.items():
            y = np.asarray(self.values[name], dtype=np.float64)
            y = np.where(y > 0, y, np.nan)  # a log axis has no place for 0
            curve.setData(x, y, connect="finite")

    def add_psnr(self, iteration: int, value: float) -> None:
        self.psnr.append((iteration, value))
        self.psnr_plot.show()
        it, val = zip(*self.psnr)
        self.psnr_curve.setData(np.asarray(it, float), np.asarray(val, float))

    @property
    def points(self) -> int:
        """How many iterations are plotted."""
        return len(self.iterations)
