"""Loss terms against iteration on a log scale (pyqtgraph), plus a PSNR curve when one is computed.

The curves are the terms the step records carry, whatever the method: one appears with the
first record that has it. Before the first record the plot is empty and says so, without the
tick labels a log axis invents for no data (0.1 … 0.9, crowded).
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtWidgets import QVBoxLayout, QWidget

from recon.methods.session import StepRecord

COLOURS = {"total": "w", "silhouette": "c", "shading": "y", "laplacian": "m", "normal": "g"}
EMPTY_HINT = "The loss curves appear here once a run starts."


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
        self.hint = pg.TextItem(EMPTY_HINT, color="#999", anchor=(0.5, 0.5))
        self.loss_plot.addItem(self.hint, ignoreBounds=True)
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
        self._show_empty(True)

    def _show_empty(self, empty: bool) -> None:
        """Empty: the hint in the middle of a fixed view, no tick values; else the curves, autoscaled."""
        self.empty = empty
        self.hint.setVisible(empty)
        for side in ("left", "bottom"):
            self.loss_plot.getAxis(side).setStyle(showValues=not empty)
        self.loss_plot.showGrid(x=not empty, y=not empty, alpha=0.2)
        if empty:
            self.loss_plot.disableAutoRange()
            self.loss_plot.setRange(xRange=(0, 1), yRange=(0, 1), padding=0)  # y in log10 units here
            self.hint.setPos(0.5, 0.5)
        else:
            self.loss_plot.enableAutoRange()

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
        if records and self.empty:  # once: a zoom the user makes later is theirs to keep
            self._show_empty(False)
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
