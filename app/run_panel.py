"""Run controls: method, device, renderer, iterations, working resolution, seed, the method's
settings by name, live-view budget, run folder; Start / Pause / Resume / Stop / Resume from a
folder; progress with it/s and ETA.

The panel only collects choices and shows state: `options()` and `resume_options()` turn them
into the `RunOptions` and `ResumeOptions` the CLI builds from its arguments ("auto" iterations and
resolution mean what they mean there), and `save`/`restore` keep them in QSettings. The window
talks to it through these methods and its signals, never through its widgets. What it shows
belongs to the current run only: the it/s counts running time (`app.run_clock`), the ETA shows
only while running, the working resolution follows the run's image levels, and `reset` clears it
all for another dataset.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import QSettings, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app.run_clock import RunClock
from recon.methods.registry import get_method, method_names
from recon.methods.session import StepRecord
from recon.runs import ResumeOptions, RunOptions
from recon.settings import parse_line

SCALES = [("auto", None), ("full", 1.0), ("1/2", 0.5), ("1/4", 0.25), ("1/8", 0.125)]
LIVE_RATES = [("off", 0.0), ("1 / s", 1.0), ("2 / s", 2.0), ("5 / s", 5.0), ("10 / s", 10.0)]
DEFAULT_LIVE_RATE = 2.0


class RunPanel(QWidget):
    """Emits what the user asked for; `set_state` decides which buttons make sense."""

    start_requested = Signal()
    pause_requested = Signal()
    resume_requested = Signal()
    stop_requested = Signal()
    resume_folder_requested = Signal()
    browse_requested = Signal()
    live_rate_changed = Signal(float)
    choices_changed = Signal()  # method, device, resolution, iterations or settings: what "auto" means may change

    def __init__(self) -> None:
        super().__init__()
        form = QFormLayout()
        self.method = QComboBox()
        for name in method_names():
            self.method.addItem(get_method(name).title, name)
        self.device = QComboBox()
        for name in ("auto", "cpu", "cuda"):
            self.device.addItem(name, name)
        self.renderer = QComboBox()
        for name in ("auto", "gl", "nvdiffrast"):
            self.renderer.addItem(name, name)
        self.chosen = QLabel("—")  # what auto picked, and why
        self.chosen.setStyleSheet("color: palette(mid);")
        self.chosen.setWordWrap(True)  # texts wrap: the panel keeps its width whatever they say
        self.chosen.setMinimumHeight(2 * self.chosen.fontMetrics().lineSpacing() + 2)
        self.iterations = QSpinBox()
        self.iterations.setRange(0, 100_000)
        self.iterations.setSingleStep(100)
        self.iterations.setSpecialValueText("auto")  # 0: the method's schedule for the device, as the CLI's default
        self.iterations.setToolTip("auto: the method's schedule on the chosen device (NDS: 2000, or 1750 on the CPU "
                                   "with auto resolution); a count keeps remeshing at its 1/4, 1/2, 3/4")
        self.iterations.setValue(0)
        self.scale = QComboBox()
        for text, value in SCALES:
            self.scale.addItem(text, value)
        self.resolution = QLabel("—")
        self.resolution.setWordWrap(True)
        self.seed = QSpinBox()
        self.seed.setRange(0, 2**31 - 1)
        self.holdout = QCheckBox("hold out one view for PSNR")
        self.live_rate = QComboBox()
        for text, value in LIVE_RATES:
            self.live_rate.addItem(text, value)
        self.live_rate.setCurrentIndex([v for _, v in LIVE_RATES].index(DEFAULT_LIVE_RATE))
        self.live_rate.setToolTip("How often the viewport gets the current mesh; 'off' gives the reconstruction every cycle")
        self.live_rate.currentIndexChanged.connect(lambda _: self.live_rate_changed.emit(self.live_rate_value()))
        for box in (self.method, self.device, self.scale):
            box.currentIndexChanged.connect(lambda _: self.choices_changed.emit())
        self.iterations.valueChanged.connect(lambda _: self.choices_changed.emit())
        self.settings = QLineEdit()
        self.settings.setPlaceholderText("NAME=VALUE …, e.g. views_per_step=2")
        self.settings.setToolTip("The method's settings by name, as `reconstruct run --set` takes them, separated by "
                                 "spaces (quote a value that holds one): a value is JSON or text, NAME.FIELD changes one field of a group "
                                 "(shader.hidden_h=256); `reconstruct settings` lists them. Applied last and saved in run.json. "
                                 "For accuracy with NDS: views_per_step=2 weight_laplacian=20 (about 40 % more time; README *Setting by name*).")
        self.settings.editingFinished.connect(self.choices_changed.emit)
        self.settings_problem = QLabel("")
        self.settings_problem.setWordWrap(True)
        self.settings_problem.setStyleSheet("color: #c0392b;")
        self.settings_problem.hide()
        self.out = QLineEdit()
        self.out.setPlaceholderText("run folder")
        browse = QToolButton()
        browse.setText("…")
        browse.clicked.connect(self.browse_requested)
        out_row = QHBoxLayout()
        out_row.addWidget(self.out, 1)
        out_row.addWidget(browse)

        for box in (self.method, self.device, self.renderer, self.scale, self.live_rate):  # never wider than the panel
            box.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
            box.setMinimumContentsLength(8)
        form.addRow("Method", self.method)
        form.addRow("Device", self.device)
        form.addRow("Renderer", self.renderer)
        form.addRow("", self.chosen)
        form.addRow("Iterations", self.iterations)
        form.addRow("Resolution", self.scale)
        form.addRow("", self.resolution)
        form.addRow("Seed", self.seed)
        form.addRow("", self.holdout)
        form.addRow("Settings", self.settings)
        form.addRow("", self.settings_problem)
        form.addRow("Live view", self.live_rate)
        form.addRow("Run folder", out_row)

        self.start_button = QPushButton("Start")
        self.pause_button = QPushButton("Pause")
        self.resume_button = QPushButton("Resume")
        self.stop_button = QPushButton("Stop")
        self.resume_folder_button = QPushButton("Resume from folder…")
        self.start_button.clicked.connect(self.start_requested)
        self.pause_button.clicked.connect(self.pause_requested)
        self.resume_button.clicked.connect(self.resume_requested)
        self.stop_button.clicked.connect(self.stop_requested)
        self.resume_folder_button.clicked.connect(self.resume_folder_requested)
        buttons = QGridLayout()
        buttons.addWidget(self.start_button, 0, 0)
        buttons.addWidget(self.pause_button, 0, 1)
        buttons.addWidget(self.resume_button, 0, 2)
        buttons.addWidget(self.stop_button, 0, 3)
        buttons.addWidget(self.resume_folder_button, 1, 0, 1, 4)

        self.progress = QProgressBar()
        self.progress.setFormat("%v / %m")
        self.rate = QLabel("")
        self.rate.setWordWrap(True)
        self.status = QLabel("Open a dataset to start.")
        self.status.setWordWrap(True)

        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addWidget(self.progress)
        layout.addWidget(self.rate)
        layout.addWidget(self.status)
        layout.addStretch(1)
        self.clock = RunClock()
        self._levels: tuple[tuple[int, tuple[int, int]], ...] = ()
        self._resume_offered, self._resume_why = False, ""
        self.set_state("idle")

    # ---- values -------------------------------------------------------------------------------
    def scale_value(self) -> float | None:
        return self.scale.currentData()

    def iterations_value(self) -> int | None:
        """None for "auto" (the method's schedule on the device)."""
        return self.iterations.value() or None

    def device_choice(self) -> str:
        """"auto", "cpu" or "cuda", as `reconstruct run --device` takes it."""
        return self.device.currentData()

    def out_path(self) -> Path | None:
        """The run folder typed or chosen, None when the field is empty."""
        text = self.out.text().strip()
        return Path(text).expanduser() if text else None

    def settings_value(self) -> dict[str, Any]:
        """The Settings field's assignments as `--set` reads them (SettingError when one is malformed)."""
        return parse_line(self.settings.text())

    def options(self, dataset: Path, out: Path) -> RunOptions:
        """The run these choices ask for, exactly as `reconstruct run` would take it (SettingError: a malformed setting)."""
        return RunOptions(
            dataset=Path(dataset),
            out=Path(out),
            method=self.method.currentData(),
            iterations=self.iterations_value(),
            image_scale=self.scale_value(),
            seed=self.seed.value(),
            device=self.device.currentData(),
            renderer=self.renderer.currentData(),
            holdout_last=self.holdout.isChecked(),
            config_overrides=self.settings_value(),
        )

    def resume_options(self, folder: Path, until: int | None = None) -> ResumeOptions:
        """Continuing the run in `folder` on the device and renderer chosen here (its own settings otherwise)."""
        return ResumeOptions(Path(folder), device=self.device_choice(), renderer=self.renderer.currentData(), until=until)

    def save(self, settings: QSettings) -> None:
        settings.setValue("run/method", self.method.currentData())
        settings.setValue("run/iterations", self.iterations.value())
        settings.setValue("run/seed", self.seed.value())
        settings.setValue("run/device", self.device.currentData())
        settings.setValue("run/renderer", self.renderer.currentData())
        settings.setValue("run/scale_index", self.scale.currentIndex())
        settings.setValue("run/live_rate", self.live_rate_value())
        settings.setValue("run/holdout", self.holdout.isChecked())
        settings.setValue("run/settings", self.settings.text())

    def restore(self, settings: QSettings) -> None:
        self.iterations.setValue(int(settings.value("run/iterations", self.iterations.value())))
        self.seed.setValue(int(settings.value("run/seed", 0)))
        for box, key in ((self.method, "run/method"), (self.device, "run/device"), (self.renderer, "run/renderer")):
            box.setCurrentIndex(max(box.findData(settings.value(key, box.currentData())), 0))
        self.scale.setCurrentIndex(int(settings.value("run/scale_index", 0)))
        self.set_live_rate(float(settings.value("run/live_rate", DEFAULT_LIVE_RATE)))
        self.holdout.setChecked(settings.value("run/holdout", "false") in (True, "true"))
        self.settings.setText(str(settings.value("run/settings", "")))

    def live_rate_value(self) -> float:
        return float(self.live_rate.currentData())

    def set_live_rate(self, rate: float) -> None:
        values = [v for _, v in LIVE_RATES]
        self.live_rate.setCurrentIndex(min(range(len(values)), key=lambda i: abs(values[i] - rate)))

    def show_choice(self, chosen: str, why: str) -> None:
        """What 'auto' picked, with the reason on a second line (and in the tooltip)."""
        self.chosen.setText(f"{chosen}\n{why}")
        self.chosen.setToolTip(why)

    def show_settings_problem(self, message: str) -> None:
        """What is wrong with the Settings field (named as `--set` would name it); "" when nothing is."""
        self.settings_problem.setText(message)
        self.settings_problem.setVisible(bool(message))

    def set_resolution_hint(self, width: int, height: int, device_hint: str) -> None:
        """Say which pixel size each choice means (auto depends on the device)."""
        scale = self.scale_value()
        if scale is None:
            self.resolution.setText(f"auto: {device_hint} (dataset {width}×{height})")
        else:
            self.resolution.setText(f"{round(width * scale)}×{round(height * scale)} px")

    # ---- state --------------------------------------------------------------------------------
    def set_state(self, state: str) -> None:
        """idle (no dataset), ready, starting, running, pausing (asked, not yet there), paused, stopping."""
        self.state = state
        busy = state in ("starting", "running", "pausing", "paused", "stopping")
        self.start_button.setEnabled(state == "ready")
        self.pause_button.setEnabled(state == "running")
        self.resume_button.setEnabled(state == "paused" or (not busy and self._resume_offered))
        self.resume_button.setToolTip("Continue the paused run" if state == "paused" else "" if busy else self._resume_why)
        self.stop_button.setEnabled(state in ("starting", "running", "pausing", "paused"))
        self.resume_folder_button.setEnabled(not busy)
        choices = (self.method, self.device, self.renderer, self.iterations, self.scale, self.seed, self.holdout,
                   self.settings, self.out)  # fmt: skip
        for widget in choices:
            widget.setEnabled(not busy)
        if state in ("running", "pausing"):  # a pause takes effect after the step under way
            self.clock.resume()
        else:  # paused, stopping or over: the clock stands, and an ETA would promise nothing
            self.clock.pause()
        self._show_rate()

    def set_status(self, text: str) -> None:
        """The line under the progress: what the run is doing, or what Resume would do."""
        self.status.setText(text)

    @property
    def resume_offer(self) -> str:
        """What Resume does at rest (to which iteration), or why it cannot; empty when nothing is offered."""
        return self._resume_why

    def offer_resume(self, enabled: bool, why: str) -> None:
        """At rest, Resume continues the run the window shows (`app.run_opener.ResumeOffer`); `why`,
        its tooltip, says to which iteration, or why it cannot."""
        self._resume_offered, self._resume_why = bool(enabled), why
        self.set_state(self.state)

    def reset(self) -> None:
        """Nothing of an earlier run: empty progress, no rate, no working resolution."""
        self.progress.reset()
        self.clock = RunClock()
        self.rate.setText("")
        self._levels = ()

    def begin(self, iteration: int, total: int, levels: tuple[tuple[int, tuple[int, int]], ...]) -> None:
        """A run starts (or resumes) at `iteration` of `total`; `levels`: (from iteration, image size) it works at."""
        self.progress.setRange(0, max(total, 1))
        self.progress.setValue(iteration)
        self.clock.start(iteration)
        self.rate.setText("")
        self._levels = tuple(levels)
        self._show_level(iteration)

    def show_steps(self, records: list[StepRecord]) -> None:
        """Iteration, it/s of running time since the start (or resume), the ETA at that rate, the working size."""
        last = records[-1]
        self.progress.setValue(last.iteration)
        self.clock.record(last.iteration)
        self._show_rate()
        self._show_level(last.iteration)

    @property
    def rate_value(self) -> float | None:
        """The it/s shown (running time only), None before the first step of a run."""
        return self.clock.rate

    def _show_rate(self) -> None:
        rate = self.clock.rate
        if rate is None:
            return
        done, total = self.progress.value(), self.progress.maximum()
        text = f"iteration {done} / {total}   {rate:.2f} it/s"
        if self.state == "running":
            text += f"   ETA {_duration((total - done) / rate)}"
        self.rate.setText(text)

    def _show_level(self, iteration: int) -> None:
        """The image size the run works at after `iteration` steps, and the next one it moves to."""
        if self._levels:
            self.resolution.setText(working_resolution(self._levels, iteration))

    def set_out(self, path: Path) -> None:
        self.out.setText(str(path))


def working_resolution(levels: tuple[tuple[int, tuple[int, int]], ...], iteration: int) -> str:
    """'working at w×h, then W×H from iteration N' before the switch, 'working at W×H (since iteration N)' after."""
    current = max((level for level in levels if level[0] <= iteration), key=lambda level: level[0], default=levels[0])
    later = [level for level in levels if level[0] > iteration]
    (width, height), start = current[1], current[0]
    text = f"working at {width}×{height}"
    if later:
        text += ", then " + ", then ".join(f"{w}×{h} from iteration {at}" for at, (w, h) in later)
    elif start > 0:
        text += f" (since iteration {start})"
    return text


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"
    if seconds >= 60:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds} s"
