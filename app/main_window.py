"""The main window: open a dataset, run a reconstruction on a worker thread, watch it, export it.

The window owns the current Scene; its `RunController` owns at most one run (the worker thread
and what the run reported). Widgets never talk to each other directly: the window connects the
run's signals (immutable snapshots, batched step records) to the viewport, plots and run panel,
and the panels' requests back to the run's thread-safe controls. The Run panel turns its choices
into `recon.runs.RunOptions`; what the viewport draws is one `app.view_state.ViewState` that the
view toolbar (`app.view_toolbar`), the View menu and the viewport's keys share. Material editing (`app.materials.MaterialsModel`) needs a shader at rest, so
the window hands it the snapshot of a finished or paused run and withdraws it while a run goes on;
the model's state reaches the viewport only through `_sync_viewport_materials`. Running work is
never dropped silently: opening another dataset or resuming during a run asks first, and closing
the window stops the worker after its current step, keeps a checkpoint, and frees GL objects in
their own context before the application ends. A run folder opened like a dataset is shown as
saved (`app.run_opener`); nothing in it is written until the user starts, resumes or edits.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
from PySide6.QtCore import QSettings, Qt, QUrl
from PySide6.QtGui import QAction, QActionGroup, QCloseEvent, QDragEnterEvent, QDropEvent, QKeySequence
from PySide6.QtWidgets import (
    QApplication,
    QDockWidget,
    QFileDialog,
    QLabel,
    QMainWindow,
    QMessageBox,
    QProgressBar,
    QVBoxLayout,
    QWidget,
)

from app.dataset_loader import DatasetLoader
from app.exporter import MESH_FORMATS, Exporter, save_png_atomic
from app.hull_preview import HullPreview, HullPreviewer
from app.log_panel import LogPanel
from app.materials import MaterialsModel
from app.materials_panel import MaterialsPanel
from app.orbit import scene_up
from app.plots_panel import PlotsPanel
from app.recent_menu import RecentMenu
from app.run_controller import RunController
from app.run_opener import RunOpener, ShownRun, describe
from app.run_panel import RunPanel
from app.session_worker import RunRequest
from app.view_state import MODES, ViewState
from app.view_toolbar import ViewToolbar
from app.views_panel import ViewsPanel
from app.viewport import Viewport
from recon.data import Scene
from recon.errors import ReconstructError
from recon.methods.session import Snapshot, normalized_camera
from recon.run_folder import RunFolder, fresh_run_folder
from recon.runs import RunOptions, describe_levels, plan, resolve_device
from recon.saved_run import SavedRun, progress
from resources import DEMO_SCENES

log = logging.getLogger(__name__)

VIEWS_WIDTH = 170  # px of the Views dock at first start: one column of thumbnails
SIDE_WIDTH = 340  # px of the Run / Materials column at first start; its texts wrap, so it keeps this width
PLOTS_HEIGHT = 200  # px of the Plots / Log dock at first start
DEFAULT_RUNS_ROOT = Path.home() / "reconstruct-runs"
DEMO_TITLES = {  # File menu entries of the bundled scenes (resources.DEMO_SCENES)
    "pot": "Open &Demo",
    "part": "Open Demo: Machined &Part",
    "torus": "Open Demo: Thick &Ring (topology)",
    "checker": "Open Demo: &Checkered Pot (texture)",
}


class MainWindow(QMainWindow):
    """Owns the current Scene and run; docks show them, the loader and the worker replace them."""

    def __init__(self, settings: QSettings | None = None) -> None:
        super().__init__()
        self.settings = settings or QSettings("reconstruct", "reconstruct-gui")
        self.scene: Scene | None = None
        self.last_error: str | None = None
        self.run = RunController(self)
        self.export_actions: list[QAction] = []  # mesh and shader: usable once there is a reconstruction
        self.screenshot_action: QAction | None = None  # usable once there is a scene
        self.snapshot = None
        self.shown_run: ShownRun | None = None  # the run folder shown at rest: what Resume continues
        self._after_run: Callable[[], None] | None = None
        self._closing = False
        self.setWindowTitle("reconstruct")
        self.setAcceptDrops(True)
        self.setDockNestingEnabled(True)

        self.view_state = ViewState(self)
        self.view_state.mode_changed.connect(self._on_mode)
        self.viewport = Viewport(view_state=self.view_state)
        self.materials = MaterialsModel(self)
        self.setCentralWidget(self._viewport_with_toolbar())
        self.views_panel = ViewsPanel()
        self.run_panel = RunPanel()
        self.materials_panel = MaterialsPanel(self.materials)
        self.plots = PlotsPanel()
        self.log_panel = LogPanel()
        self.docks = {
            "views": self._dock("Views", self.views_panel, Qt.DockWidgetArea.LeftDockWidgetArea),
            "run": self._dock("Run", self.run_panel, Qt.DockWidgetArea.RightDockWidgetArea),
            "materials": self._dock("Materials", self.materials_panel, Qt.DockWidgetArea.RightDockWidgetArea),
            "plots": self._dock("Plots", self.plots, Qt.DockWidgetArea.BottomDockWidgetArea),
            "log": self._dock("Log", self.log_panel, Qt.DockWidgetArea.BottomDockWidgetArea),
        }
        self.tabifyDockWidget(self.docks["plots"], self.docks["log"])
        self.tabifyDockWidget(self.docks["run"], self.docks["materials"])  # one column: the window stays laptop-sized
        self.setCorner(Qt.Corner.BottomRightCorner, Qt.DockWidgetArea.RightDockWidgetArea)  # that column is full height
        self.docks["run"].raise_()
        self.docks["plots"].raise_()

        self.status = QLabel("Drop a dataset folder or file here, or use File → Open.")
        self.statusBar().addWidget(self.status, 1)
        self.export_progress = QProgressBar()
        self.export_progress.setRange(0, 0)  # busy indicator: baking has no fine-grained progress
        self.export_progress.setMaximumWidth(160)
        self.export_progress.hide()
        self.statusBar().addPermanentWidget(self.export_progress)

        self.loader = DatasetLoader(self)
        self.loader.loaded.connect(self._on_loaded)
        self.loader.failed.connect(self._on_failed)
        self.run_opener = RunOpener(self)
        self.run_opener.opened.connect(self._on_run_opened)
        self.run_opener.failed.connect(self._on_run_open_failed)
        self.exporter = Exporter(self)
        self.exporter.progress.connect(self._on_export_progress)
        self.exporter.finished.connect(self._on_exported)
        self.exporter.failed.connect(self._on_export_failed)
        self.hull_previewer = HullPreviewer(self)
        self.hull_previewer.finished.connect(self._on_hull_preview)
        self.hull_previewer.failed.connect(lambda message: log.warning("no visual hull preview: %s", message))
        self._connect_run_panel()
        self._connect_run()
        self._connect_materials()
        self.views_panel.currentRowChanged.connect(self._on_view_selected)
        self._build_menus()
        self._restore_settings()

    # ---- layout ------------------------------------------------------------------------------
    def _dock(self, title: str, widget: QWidget, area: Qt.DockWidgetArea) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(f"dock-{title.lower()}")
        dock.setWidget(widget)
        self.addDockWidget(area, dock)
        return dock

    def _viewport_with_toolbar(self) -> QWidget:
        self.view_bar = ViewToolbar(self.viewport)
        bar = self.view_bar
        self.mode_box, self.path_box, self.wire_box = bar.mode_box, bar.path_box, bar.wire_box
        self.frusta_box, self.opacity = bar.frusta_box, bar.opacity
        self.viewport.view_snapped.connect(self._on_viewport_snapped)
        self.viewport.camera_moved.connect(self._on_camera_moved)
        holder = QWidget()
        layout = QVBoxLayout(holder)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(bar)
        layout.addWidget(self.viewport, 1)
        return holder

    # ---- menus -------------------------------------------------------------------------------
    def _action(self, menu, text: str, slot, shortcut=None, checkable: bool = False) -> QAction:
        action = QAction(text, self)
        if shortcut is not None:
            action.setShortcut(shortcut)
        action.setCheckable(checkable)
        action.triggered.connect(slot)
        menu.addAction(action)
        return action

    def _build_menus(self) -> None:
        menu = self.menuBar().addMenu("&File")
        self._action(menu, "Open &Folder…", self._ask_folder, QKeySequence.StandardKey.Open)
        self._action(menu, "Open &File…", self._ask_file)
        self.demo_actions = {scene: self._action(menu, DEMO_TITLES[scene], lambda _=False, s=scene: self.open_demo(s))
                             for scene in DEMO_SCENES}  # fmt: skip
        self.recent_menu = RecentMenu(self.settings, menu)
        self.recent_menu.chosen.connect(self.open_dataset)
        menu.addMenu(self.recent_menu)
        menu.addSeparator()
        self._action(menu, "&Resume Run from Folder…", self._ask_resume_folder)
        self._action(menu, "Runs &Location…", self._ask_runs_root)
        menu.addSeparator()
        export = menu.addMenu("&Export")
        for fmt in MESH_FORMATS:
            text = f"Mesh as {fmt.upper()} (baked colours, material edits)…"
            self.export_actions.append(self._action(export, text, lambda _=False, f=fmt: self._ask_export_mesh(f)))
        self.export_actions.append(self._action(export, "Shader Weights…", self._ask_export_shader))
        self.screenshot_action = self._action(export, "Screenshot (PNG)…", self._ask_screenshot, QKeySequence("Ctrl+Shift+S"))
        self._update_export_actions()
        menu.addSeparator()
        self._action(menu, "&Quit", self.close, QKeySequence.StandardKey.Quit)

        edit = self.menuBar().addMenu("&Edit")
        self.undo_action = self.materials.undo_stack.createUndoAction(self, "&Undo")
        self.undo_action.setShortcut(QKeySequence("Ctrl+Z"))
        self.redo_action = self.materials.undo_stack.createRedoAction(self, "&Redo")
        self.redo_action.setShortcuts([QKeySequence("Ctrl+Shift+Z"), QKeySequence("Ctrl+Y")])
        edit.addAction(self.undo_action)
        edit.addAction(self.redo_action)

        view = self.menuBar().addMenu("&View")
        self._view_state_actions(view)
        view.addSeparator()
        self._action(view, "Reset Camera", self.viewport.reset_camera)
        view.addSeparator()
        for dock in self.docks.values():
            view.addAction(dock.toggleViewAction())

    def _view_state_actions(self, menu) -> None:
        """Modes, wireframe and cameras in the View menu: checked as the view state says, writing it.

        The keys are the viewport's own (they act when it has focus); the menu shows them after a tab.
        """
        state = self.view_state
        group = QActionGroup(self)
        self.mode_actions: dict[str, QAction] = {}
        for i, mode in enumerate(MODES):
            action = self._action(menu, f"{mode.capitalize()} shading\t{i + 1}", lambda _=False, m=mode: self._set_mode(m),
                                  None, True)
            action.setChecked(mode == state.mode)
            group.addAction(action)
            self.mode_actions[mode] = action
        state.mode_changed.connect(lambda mode: self.mode_actions[mode].setChecked(True))
        menu.addSeparator()
        self.wireframe_action = self._action(menu, "Wireframe\tW", state.set_wireframe, None, True)
        self.wireframe_action.setChecked(state.wireframe)
        state.wireframe_changed.connect(self.wireframe_action.setChecked)
        self.frusta_action = self._action(menu, "Cameras\tC", state.set_frusta, None, True)
        self.frusta_action.setChecked(state.frusta)
        state.frusta_changed.connect(self.frusta_action.setChecked)

    def _set_mode(self, mode: str) -> None:
        self.view_state.set_mode(mode)

    @property
    def snapshot(self) -> Snapshot | None:
        """The reconstruction on show (what Export writes), None before any."""
        return self._snapshot

    @snapshot.setter
    def snapshot(self, snapshot: Snapshot | None) -> None:
        self._snapshot = snapshot
        self._update_export_actions()

    def _update_export_actions(self) -> None:
        """Export only what exists: a save dialog for nothing would end in "Nothing to export"."""
        for action in self.export_actions:
            action.setEnabled(self._snapshot is not None)
        if self.screenshot_action is not None:
            self.screenshot_action.setEnabled(self.scene is not None or self._snapshot is not None)

    def _on_mode(self, mode: str) -> None:
        self.materials.want_projection(mode == "features")  # fitted once per shader, in the background

    def _ask_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Open a dataset or run folder", self.recent_menu.last_folder())
        if folder:
            self.open_dataset(Path(folder))

    def _ask_file(self) -> None:
        file, _ = QFileDialog.getOpenFileName(
            self, "Open dataset file", self.recent_menu.last_folder(), "Dataset files (*.json *.npz *.txt *.bin);;All files (*)"
        )
        if file:
            self.open_dataset(Path(file))

    def runs_root(self) -> Path:
        return Path(str(self.settings.value("runs/root", str(DEFAULT_RUNS_ROOT))))

    def _ask_runs_root(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Folder for new runs", str(self.runs_root()))
        if folder:
            self.settings.setValue("runs/root", folder)
            if self.scene is not None and not self.running:
                self.run_panel.set_out(self._default_out(self.scene))

    # ---- opening -----------------------------------------------------------------------------
    def open_demo(self, scene: str = "pot") -> None:
        """Open a bundled demo scene (`resources.DEMO_SCENES`), building its dataset on first use."""
        from recon.demo import demo_dataset, load_recipe

        self.status.setText("Preparing the demo scene (rendered once, then cached)…")
        try:
            path = demo_dataset(recipe=load_recipe(scene=scene))
        except (ReconstructError, RuntimeError, OSError) as exc:
            self._show_error("Cannot open the demo", f"the demo scene could not be built: {exc}")
            return
        self.open_dataset(path)

    def open_dataset(self, path: Path) -> None:
        """Load `path` in the background; the current scene stays until the new one is ready.

        During a run, ask first: the run is stopped (its checkpoint kept) only if the user agrees.
        """
        path = Path(path)
        if self.running:
            self._ask_to_stop(
                f"A reconstruction is running. Stop it and open {path.name}?\n\n"
                f"Its checkpoint stays in {self.run_info.get('out', 'the run folder')}; "
                "Resume Run from Folder continues it later.",
                lambda: self.open_dataset(path),
            )
            return
        if self.loader.busy or self.run_opener.busy:
            self._show_error("Cannot open dataset", f"{path}: another dataset is still loading; try again when it is done")
            return
        self.status.setText(f"Loading {path} …")
        if RunFolder(path).looks_like_run:  # a run's folder: shown as saved, nothing written
            self.run_opener.start(path)
        else:
            self.loader.start(path)

    def _on_loaded(self, scene: Scene) -> None:
        self.last_error = None
        self.recent_menu.remember(scene.source)
        self._show_scene(scene)
        self.run_panel.set_out(self._default_out(scene))
        self._update_device_hint()
        self.run_panel.set_status("Ready: press Start.")
        self.run_panel.set_state("ready")
        self._show_run_at_rest(None)

    def _on_run_opened(self, saved: SavedRun) -> None:
        """A run folder shown as saved: its scene when its dataset is there, mesh, shader, materials, history."""
        self.last_error = None
        self.recent_menu.remember(saved.folder.path)
        if saved.scene is not None:
            self._show_scene(saved.scene)
            self.run_panel.set_out(self._default_out(saved.scene))  # Start makes a new run, never this one
            self._update_device_hint()
        else:
            self.scene = None
            self.views_panel.show_scene(None)
            self.viewport.set_views([], [], np.array([0.0, 1.0, 0.0]))
            self.plots.clear()
        self.setWindowTitle(f"reconstruct — {saved.folder.path.name}")
        self.run.show_saved(saved.folder.path, saved.record)
        self._on_snapshot(saved.snapshot)
        self.plots.add_steps(saved.history)
        self.run_panel.set_state("ready" if self.scene is not None else "idle")
        self._show_run_at_rest(ShownRun(saved.folder.path, saved.record, saved.missing_scene))
        self._update_materials()
        self.status.setText(describe(saved))
        self.run_panel.set_status(self.run_panel.resume_offer)
        log.info("opened %s: %s", saved.folder.path, self.status.text())

    def _on_run_open_failed(self, message: str) -> None:
        self.status.setText("Could not open the run folder (see the message).")
        self._show_error("Cannot open run folder", f"{message}\n\nFix or restore the file named above (a run writes run.json, "
                         "mesh.ply and shader.* itself), or open another folder. Nothing was changed: the folder and "
                         "this window are as they were.")

    def _show_run_at_rest(self, shown: ShownRun | None) -> None:
        """The run Resume continues when nothing runs (None: none); the Resume button says what it would do."""
        self.shown_run = shown
        self._offer_resume()

    def _offer_resume(self) -> None:
        offer = None if self.shown_run is None else self.shown_run.offer(self.run_panel.iterations_value())
        self.run_panel.offer_resume(offer is not None and offer.enabled, "" if offer is None else offer.why)

    def _show_scene(self, scene: Scene) -> None:
        """Views, frusta and title for `scene`; the plots and the mesh start empty."""
        self.scene = scene
        self.views_panel.show_scene(scene)
        width, height = scene.resolution
        self.status.setText(
            f"{scene.source.name}: {scene.format}, {len(scene.views)} views at {width}×{height}, "
            f"bounding box {scene.bbox_source}"
        )
        self.setWindowTitle(f"reconstruct — {scene.source.name}")
        centre, scale = scene.normalization()
        cameras = [normalized_camera(v.camera, centre, scale) for v in scene.views]
        self.viewport.set_views(cameras, [v.image for v in scene.views], scene_up(cameras))
        self.viewport.clear()
        self.snapshot = None
        self.plots.clear()
        self.run_panel.reset()  # the progress and rate of a run on the previous scene
        self._update_materials()
        self.hull_previewer.request(scene)

    def _on_hull_preview(self, preview: HullPreview) -> None:
        """Frame the object's hull, and show it until the run's first mesh (if it is still this scene's)."""
        if preview.scene is not self.scene:
            return
        self.viewport.frame_box(*preview.box)
        if self.snapshot is None:
            self.viewport.set_preview(preview.vertices, preview.faces)

    def _default_out(self, scene: Scene) -> Path:
        name = scene.source.name if scene.source.is_dir() else scene.source.parent.name
        # Stamped to the second, so a run started within the same second may hold it already.
        return fresh_run_folder(self.runs_root() / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}")

    def run_options(self) -> RunOptions | None:
        """What Start would run now (the Run panel's choices on the current scene), or None without a scene."""
        if self.scene is None:
            return None
        out = self.run_panel.out_path() or self._default_out(self.scene)
        return self.run_panel.options(self.scene.source, out)

    def _update_device_hint(self) -> None:
        """Say what the panel's choices mean on this machine: the device, and the resolution "auto" picks."""
        try:
            device, why = resolve_device(self.run_panel.device_choice())
        except ReconstructError as exc:
            self.run_panel.show_choice("no device", str(exc))
            return
        self.run_panel.show_choice(f"device {device}", why)
        try:
            options = self.run_options()
            auto = None if options is None else plan(replace(options, image_scale=None))
        except ReconstructError as exc:  # the Settings field names no setting, or a value of the wrong kind
            self.run_panel.show_settings_problem(str(exc))
            return
        self.run_panel.show_settings_problem("")
        if auto is not None:
            width, height = self.scene.resolution
            scale = auto.scale if isinstance(auto.scale, float) else auto.scale.for_size(width, height)
            levels = describe_levels(auto, round(width * scale), round(height * scale))
            self.run_panel.set_resolution_hint(width, height, f"{levels} on {device}")

    def _on_failed(self, message: str) -> None:
        self.status.setText("Could not open the dataset (see the message).")
        self._show_error("Cannot open dataset", message)

    def _show_error(self, title: str, message: str) -> None:
        """Log the error and show it in a non-blocking dialog; the app stays usable."""
        self.last_error = message
        log.error("%s", message)
        box = QMessageBox(QMessageBox.Icon.Warning, title, message, parent=self)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.open()

    def _ask_to_stop(self, question: str, then: Callable[[], None]) -> None:
        """Ask (non-blocking) whether to stop the running reconstruction; on yes, stop and then `then`."""
        box = QMessageBox(QMessageBox.Icon.Question, "Stop the reconstruction?", question, parent=self)
        box.setStandardButtons(QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel)
        box.setDefaultButton(QMessageBox.StandardButton.Cancel)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)

        def answered(button) -> None:
            if box.standardButton(button) == QMessageBox.StandardButton.Yes:
                self._after_run = then
                self.stop_run()

        box.buttonClicked.connect(answered)
        box.open()

    # ---- the run -----------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self.run.running

    @property
    def run_info(self) -> dict:
        """What the current or last run said about itself (device, resolution, out, …)."""
        return self.run.info

    @property
    def run_result(self) -> dict | None:
        """The last finished run's record (run.json contents)."""
        return self.run.result

    @property
    def paused_at(self) -> int | None:
        return self.run.paused_at

    def _connect_run_panel(self) -> None:
        panel = self.run_panel
        panel.start_requested.connect(self.start_run)
        panel.pause_requested.connect(self.pause_run)
        panel.resume_requested.connect(self.resume_run)
        panel.stop_requested.connect(self.stop_run)
        panel.resume_folder_requested.connect(self._ask_resume_folder)
        panel.browse_requested.connect(self._ask_out)
        panel.live_rate_changed.connect(self._on_live_rate)
        panel.choices_changed.connect(self._update_device_hint)
        panel.choices_changed.connect(self._offer_resume)

    def _ask_out(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Run folder", str(self.runs_root()))
        if folder:
            self.run_panel.set_out(Path(folder))

    def start_run(self) -> None:
        """A new reconstruction of the current scene with the panel's settings."""
        if self.running:
            return
        try:
            options = self.run_options()
            if options is not None:
                plan(options)  # a setting the method lacks, or out of range, is said here, before any thread
        except ReconstructError as exc:
            self._show_error("Cannot start", str(exc))
            return
        if options is None:
            return
        out = fresh_run_folder(options.out)
        taken = options.out
        if out != taken:  # the same dataset again: a new run beside the last, which stays as it is
            self.run_panel.set_out(out)
            options = replace(options, out=out)
        self._start(RunRequest(options, live_rate=self.run_panel.live_rate_value()))
        if out != taken:  # said after _start's "Starting …", which would hide it
            self.status.setText(f"{taken.name} holds a run already: this one goes to {out.name} …")

    def resume_from(self, folder: Path, until: int | None = None) -> None:
        """Continue the run in `folder` from its checkpoint (its own dataset and settings).

        `until` stops at that iteration (extending the schedule if needed); None finishes the run's own schedule.
        """
        if self.running:
            self._ask_to_stop(f"A reconstruction is running. Stop it and resume {folder}?", lambda: self.resume_from(folder, until))
            return
        try:
            record = RunFolder(folder).record()
        except ReconstructError as exc:
            self._show_error("Cannot resume", f"{exc}\n\nChoose a folder a run wrote (File → Resume Run from Folder…).")
            return
        done, planned = progress(record)
        if done >= (planned if until is None else until):  # nothing left to do: show it, never rewrite it
            self.open_dataset(Path(folder))
            return
        panel = self.run_panel
        self._start(RunRequest(panel.resume_options(folder, until), live_rate=panel.live_rate_value()))

    def _ask_resume_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Resume the run in folder", str(self.runs_root()))
        if folder:
            self.resume_from(Path(folder))

    def _start(self, request: RunRequest) -> None:
        self.plots.clear()
        self.run_panel.reset()  # the last run's progress and rate are not this one's
        self.run_panel.set_state("starting")
        self.run_panel.set_status("Starting …")
        self.status.setText(f"Starting a reconstruction in {request.out} …")
        self.viewport.set_live(request.live_rate)
        self.run.start(request)
        self._update_materials()

    def _connect_run(self) -> None:
        run = self.run
        run.started.connect(self._on_run_started)
        run.steps.connect(self._on_steps)
        run.snapshot.connect(self._on_snapshot)
        run.paused.connect(self._on_paused)
        run.psnr.connect(self.plots.add_psnr)
        run.status.connect(self.run_panel.set_status)
        run.finished.connect(self._on_run_finished)
        run.failed.connect(self._on_run_failed)

    # ---- materials ---------------------------------------------------------------------------
    def _connect_materials(self) -> None:
        model = self.materials
        for signal in (model.availability_changed, model.materials_changed, model.selection_changed,
                       model.shading_changed, model.projection_changed):
            signal.connect(lambda *_: self._sync_viewport_materials())
        self.viewport.surface_picked.connect(self._on_surface_picked)
        self.viewport.pick_missed.connect(self.status.setText)
        self.materials_panel.pick_mode_changed.connect(self.viewport.set_pick_mode)
        self.materials_panel.edit_applied.connect(lambda: self._set_mode("neural"))

    def _update_materials(self) -> None:
        """Hand the model the shader when it rests (run finished or paused), withdraw it otherwise."""
        if self.snapshot is None or not self.run_info.get("out"):
            self.materials.clear("No shader yet: run a reconstruction (or resume a run folder), then pause it or let it finish.")
        elif self.running and self.run_panel.state != "paused":
            self.materials.set_unavailable(
                "A run is going on: pause it or let it finish to find and edit materials (the shader still changes)."
            )
        else:
            self.materials.set_source(self.snapshot, Path(self.run_info["out"]))

    def _sync_viewport_materials(self) -> None:
        """The viewport shows the model's edits, materials and selection only for the shader they belong to."""
        self.viewport.set_shading_inputs(self.materials.shading_inputs())

    def _on_surface_picked(self, point) -> None:
        if not self.materials.available:
            self.status.setText(self.materials.why_not)
            return
        material = self.materials.pick(point)
        if material is None:
            self.status.setText("Picked a surface point; press Find in the Materials panel to select materials too.")
        else:
            self._set_mode("materials")  # show the region the selection covers
            self.status.setText(f"Picked material {material}")

    def pause_run(self) -> None:
        if self.running:
            self.run.pause()
            self.run_panel.set_state("pausing")
            self.run_panel.set_status("Pausing after this iteration …")

    def resume_run(self) -> None:
        """Resume: a paused run goes on; at rest, the run shown continues as its offer says."""
        if self.running:
            self.run.resume()
            self.run_panel.set_state("running")
            self.run_panel.set_status("Running")
            self._update_materials()
        elif self.shown_run is not None:
            offer = self.shown_run.offer(self.run_panel.iterations_value())
            if offer.enabled:
                self.resume_from(offer.folder, offer.until)

    def stop_run(self) -> None:
        """Stop after the current step; outputs and a checkpoint are written, then `finished` arrives."""
        if self.running:
            self.run.stop()
            self.run_panel.set_state("stopping")
            self.run_panel.set_status("Stopping after this iteration; writing the checkpoint …")

    def _on_live_rate(self, rate: float) -> None:
        self.settings.setValue("run/live_rate", rate)
        if self.running:
            self.run.set_live_rate(rate)
            self.viewport.set_live(rate)

    def _on_run_started(self, info: dict) -> None:
        scene = info["scene"]
        if self.scene is None or Path(self.scene.source) != Path(scene.source):  # a resumed run of another dataset
            self._show_scene(scene)
        self.run_panel.begin(info["iteration"], info["total"], info["levels"])
        self.run_panel.show_choice(f"device {info['device']}, renderer {info['renderer']}", info["why"])
        self.run_panel.set_out(Path(info["out"]))
        self.plots.add_steps(info["history"])  # a resumed run's whole history, not only what follows
        self.status.setText(f"Reconstructing {scene.source.name} ({info['views']} views) into {info['out']}")
        if self.run_panel.state == "starting":
            self.run_panel.set_state("running")

    def _on_steps(self, records: list) -> None:
        self.plots.add_steps(records)
        self.run_panel.show_steps(records)
        for record in records:
            if record.event:
                log.info("iteration %d: %s", record.iteration, record.event)

    def _on_snapshot(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot
        self.viewport.set_snapshot(snapshot)

    def _on_paused(self, iteration: int) -> None:
        if self.run.is_paused:
            self.run_panel.set_state("paused")
            self.run_panel.set_status(f"Paused after iteration {iteration}")
            self._update_materials()

    def _on_run_finished(self, result: dict) -> None:
        stopped = result.get("stopped", False)
        out = self.run_info.get("out", "")
        text = (f"Stopped at iteration {result['iteration']}; checkpoint in {out}" if stopped
                else f"Done: {result['iteration']} iterations, {result['mesh']['faces']} faces in {out}")
        if "psnr_heldout" in result:
            text += f"; held-out PSNR {result['psnr_heldout']:.2f} dB"
        self.run_panel.set_status(text)
        self.status.setText(text)
        self._end_run()

    def _on_run_failed(self, message: str) -> None:
        out = self.run_info.get("out")
        hint = f"\n\nAnything written so far is in {out}; fix the cause and start again, or Resume Run from Folder." if out else ""
        self.run_panel.set_status("The reconstruction failed (see the message and the log).")
        self._end_run()
        self._show_error("Reconstruction failed", f"{message}{hint}")

    def _end_run(self) -> None:
        self.viewport.set_live(0.0)  # refine the last frame at full resolution
        self.run_panel.set_state("ready" if self.scene is not None else "idle")
        result, out = self.run_result, self.run_info.get("out")
        self._show_run_at_rest(ShownRun(Path(out), result) if result is not None and out else None)
        self._update_materials()
        after, self._after_run = self._after_run, None
        if after is not None and not self._closing:
            after()

    # ---- viewport links ----------------------------------------------------------------------
    def _on_view_selected(self, row: int) -> None:
        if row >= 0 and self.viewport.snapped_view != row:
            self.viewport.snap_to_view(row)

    def _on_viewport_snapped(self, index: int) -> None:
        if self.views_panel.currentRow() != index:
            self.views_panel.setCurrentRow(index)

    def _on_camera_moved(self) -> None:
        if self.viewport.snapped_view is None and self.views_panel.currentRow() >= 0:
            self.views_panel.blockSignals(True)
            self.views_panel.setCurrentRow(-1)
            self.views_panel.blockSignals(False)

    # ---- export ------------------------------------------------------------------------------
    def _export_target(self, title: str, suggestion: str, filters: str) -> Path | None:
        base = Path(self.run_info.get("out") or self.recent_menu.last_folder())
        path, _ = QFileDialog.getSaveFileName(self, title, str(base / suggestion), filters)
        return Path(path) if path else None

    def _ask_export_mesh(self, fmt: str) -> None:
        path = self._export_target("Export mesh", f"mesh_colored.{fmt}", f"{fmt.upper()} (*.{fmt})")
        if path is not None:
            self.export("mesh", path if path.suffix else path.with_suffix(f".{fmt}"))

    def _ask_export_shader(self) -> None:
        path = self._export_target("Export shader weights", "shader", "Shader (*.json *.safetensors)")
        if path is not None:
            self.export("shader", path.with_suffix("") if path.suffix in (".json", ".safetensors") else path)

    def _ask_screenshot(self) -> None:
        path = self._export_target("Save screenshot", "screenshot.png", "PNG (*.png)")
        if path is not None:
            self.save_screenshot(path)

    def export(self, kind: str, path: Path) -> bool:
        """Start a background export of the latest snapshot ("mesh" by suffix, or "shader")."""
        if self.snapshot is None:
            self._show_error("Nothing to export", "there is no reconstruction yet: start a run (or resume one) first")
            return False
        if self.exporter.busy:
            self._show_error("Export busy", "another export is still running; try again when it is done")
            return False
        edits = self.materials.shading_edits() if kind == "mesh" and self.materials.available else None
        self.export_progress.show()
        self.exporter.start(kind, self.snapshot, path, edits=edits)
        return True

    def save_screenshot(self, path: Path) -> Path | None:
        """The viewport's current frame as PNG, written atomically."""
        try:
            written = save_png_atomic(self.viewport.grabFramebuffer(), Path(path))
        except (ReconstructError, OSError) as exc:
            self._show_error("Screenshot failed", f"{path}: {exc}")
            return None
        self.status.setText(f"Saved {written}")
        return written

    def _on_export_progress(self, text: str) -> None:
        self.status.setText(text)

    def _on_exported(self, path: str) -> None:
        self.export_progress.hide()
        self.status.setText(f"Exported {path}")
        log.info("exported %s", path)

    def _on_export_failed(self, message: str) -> None:
        self.export_progress.hide()
        self._show_error("Export failed", f"{message}\n\nCheck that the folder exists and is writable, then export again.")

    # ---- drag and drop -----------------------------------------------------------------------
    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        urls: list[QUrl] = event.mimeData().urls()
        local = [Path(u.toLocalFile()) for u in urls if u.isLocalFile()]
        if not local:
            self._show_error("Cannot open dataset", "the dropped item is not a local file or folder")
            return
        event.acceptProposedAction()
        self.open_dataset(local[0])

    # ---- settings and shutdown ---------------------------------------------------------------
    def _restore_settings(self) -> None:
        s = self.settings
        geometry = s.value("window/geometry")
        if geometry is not None:
            self.restoreGeometry(geometry)
        else:
            self.resize(1280, 820)
        state = s.value("window/state")
        if state is not None:
            self.restoreState(state)
        else:
            self.resizeDocks([self.docks["views"], self.docks["run"]], [VIEWS_WIDTH, SIDE_WIDTH], Qt.Orientation.Horizontal)
            self.resizeDocks([self.docks["plots"]], [PLOTS_HEIGHT], Qt.Orientation.Vertical)
        self.run_panel.restore(s)
        self.view_state.restore(s)

    def _save_settings(self) -> None:
        s = self.settings
        s.setValue("window/geometry", self.saveGeometry())
        s.setValue("window/state", self.saveState())
        self.run_panel.save(s)
        self.view_state.save(s)

    def _stop_run_before_closing(self) -> None:
        """Join the run's thread; when its last step and writes take long, say so and keep the UI painting."""
        run = self.run
        if run.stop_and_wait():
            return
        self.status.setText("Stopping the run: finishing its step and writing the checkpoint …")
        log.warning("the run takes long to stop; waiting for its checkpoint in %s", self.run_info.get("out"))
        while not run.stop_and_wait(0.1):
            QApplication.processEvents()

    def closeEvent(self, event: QCloseEvent) -> None:
        """Stop and join the worker (it writes a checkpoint), finish exports, free GL, then close."""
        self._closing = True
        self._save_settings()
        if self.running:
            log.info("closing during a run: stopping it and keeping a checkpoint in %s", self.run_info.get("out"))
            self._stop_run_before_closing()
        self.loader.wait()
        self.run_opener.wait()
        self.hull_previewer.wait()
        self.exporter.wait()
        self.materials.wait()
        self.viewport.release()
        self.log_panel.detach()
        self.settings.sync()
        super().closeEvent(event)
