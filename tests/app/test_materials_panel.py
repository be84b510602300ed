"""Material editing in a real window: find materials after a short demo run, pick one on the mesh,
replace it (viewport, edits.json, baked export), undo/redo bit for bit, reload edits on resume,
and switch the shading path.

Frames are grabbed from the QOpenGLWidget and compared as arrays; the window is kept small since
the CPU path shades the 256-wide MLP for every covered pixel.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
import trimesh
from PySide6.QtCore import QPoint, Qt

from render.viewer.pipeline import BACKGROUND
from tests.app.frames import grab_viewport

ITERATIONS = 20  # enough for h to tell the demo's clay from its red fin and handle
SAMPLES = 4000  # surface samples for the clustering (the GUI's default is 20,000)


@pytest.fixture
def one_torch_thread() -> Iterator[None]:
    """Shared CI machines run more threads than cores; OpenMP's spin-waits then make the many small
    torch ops of k-means 10–50× slower with 2 threads than with 1, so this test uses one."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _covered(rgb: np.ndarray) -> np.ndarray:
    background = np.round(np.asarray(BACKGROUND) * 255)
    return np.abs(rgb.astype(np.float64) - background).max(axis=-1) > 3


def _settled_frame(qtbot, window, mode: str) -> np.ndarray:
    window.mode_box.setCurrentIndex(window.mode_box.findData(mode))
    viewport = window.viewport
    qtbot.waitUntil(lambda: viewport.settled and viewport.frames > 0, timeout=60_000)
    return grab_viewport(viewport)


def _baked_colours(path: Path) -> np.ndarray:
    return np.asarray(trimesh.load(path, process=False).visual.vertex_colors)[:, :3]


def test_find_pick_replace_undo_redo_and_reload(
    make_main_window, small_demo, qtbot, run_to_end, tmp_path, one_torch_thread
) -> None:
    window = make_main_window()
    window.viewport.setFixedSize(240, 180)  # CPU neural shading costs per covered pixel
    window.frusta_box.setChecked(False)
    window.run_panel.set_live_rate(0.0)  # no live shading competing with the run for the CPU
    window.activateWindow()  # keyboard shortcuts go to the active window
    qtbot.waitUntil(window.isActiveWindow, timeout=5_000)
    panel, model = window.materials_panel, window.materials
    model.samples = SAMPLES
    with qtbot.waitSignal(window.loader.loaded, timeout=60_000):
        window.open_dataset(small_demo)
    assert not panel.find.isEnabled() and "No shader yet" in panel.reason.text()  # says why it is disabled

    run_to_end(window, ITERATIONS)
    out = Path(window.run_info["out"])
    qtbot.waitUntil(lambda: not model.busy, timeout=30_000)  # looked for a saved clustering: none yet
    assert panel.find.isEnabled() and panel.reason.isHidden()

    # Discover: k chosen in the spin box; one row per material, each with a ball rendered by the shader.
    panel.k.setValue(3)
    with qtbot.waitSignal(model.materials_changed, timeout=60_000, check_params_cb=lambda m: m is not None):
        panel.find.click()
    assert panel.list.count() == 3 and model.materials.k == 3
    for row in range(3):
        item = panel.list.item(row)
        assert not item.icon().isNull() and "%" in item.text() and "#" in item.text()
    assert (out / "materials.json").exists()

    # See: the "features" mode shows h through the clustering's 3 principal components.
    viewport = window.viewport
    smooth = _settled_frame(qtbot, window, "smooth")
    features = _settled_frame(qtbot, window, "features")
    assert viewport.shading.projection is model.materials.projection
    assert _covered(features).sum() > 100 and not np.array_equal(features, smooth)

    # Pick: a Ctrl+click on the mesh selects its material; the list follows, the highlight shows.
    plain = _settled_frame(qtbot, window, "materials")
    covered = np.argwhere(_covered(plain))
    y, x = covered[len(covered) // 2]
    ratio = viewport.devicePixelRatioF()
    at = QPoint(int(x / ratio), int(y / ratio))
    qtbot.mouseClick(viewport, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.ControlModifier, at)
    assert model.selected is not None and panel.list.currentRow() == model.selected
    assert model.point is not None and window.mode_box.currentData() == "materials"
    highlighted = _settled_frame(qtbot, window, "materials")
    assert (np.abs(highlighted.astype(int) - plain.astype(int)).max(axis=-1) > 8).sum() > 50  # others dimmed

    # Edit: replace the picked material by another one; the neural image changes, edits.json is written.
    before = _settled_frame(qtbot, window, "neural")
    source = model.selected
    target = next(i for i in range(3) if i != source)
    panel.target.setCurrentIndex(panel.target.findData(target))
    window.mode_box.setCurrentIndex(window.mode_box.findData("materials"))
    panel.apply.click()
    assert len(model.edits) == 1 and window.undo_action.isEnabled()
    assert window.mode_box.currentData() == "neural"  # the edit is shown as it shades
    after = _settled_frame(qtbot, window, "neural")
    assert (np.abs(after.astype(int) - before.astype(int)).max(axis=-1) > 0).sum() > 20
    saved = json.loads((out / "edits.json").read_text())
    assert saved["edits"] == [{"op": "replace", "source": source, "target": target, "weight": 1.0, "region": None}]

    # Bake: File → Export writes the edited colours into the mesh.
    with qtbot.waitSignal(window.exporter.finished, timeout=30_000):
        assert window.export("mesh", tmp_path / "edited.ply")

    # Undo gives back the exact previous frame, redo the edited one (Ctrl+Z / Ctrl+Shift+Z).
    qtbot.keyClick(viewport, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert len(model.edits) == 0
    assert np.array_equal(_settled_frame(qtbot, window, "neural"), before)
    assert json.loads((out / "edits.json").read_text())["edits"] == []
    with qtbot.waitSignal(window.exporter.finished, timeout=30_000):
        assert window.export("mesh", tmp_path / "plain.ply")
    qtbot.keyClick(viewport, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    assert len(model.edits) == 1
    assert np.array_equal(_settled_frame(qtbot, window, "neural"), after)
    edited, unedited = _baked_colours(tmp_path / "edited.ply"), _baked_colours(tmp_path / "plain.ply")
    assert edited.shape == unedited.shape and (np.abs(edited.astype(int) - unedited.astype(int)).max(axis=1) > 2).sum() > 10

    # A brushed edit: only within the radius around the picked point.
    panel.in_region.setChecked(True)
    panel.radius.setValue(10)
    panel.weight.setValue(50)
    panel.apply.click()
    op = model.edits.operations[-1]
    assert op.region is not None and op.weight == 0.5 and np.allclose(op.region.centre, model.point)

    # Resuming the folder (no further steps: the same shader) loads the clustering and edits.json.
    other = make_main_window()
    other.viewport.setFixedSize(160, 120)
    other.mode_box.setCurrentIndex(other.mode_box.findData("smooth"))  # no neural shading needed here
    with qtbot.waitSignal(other.materials.materials_changed, timeout=60_000, check_params_cb=lambda m: m is not None):
        other.resume_from(out, until=ITERATIONS)
    assert other.materials.edits == model.edits and other.materials_panel.edits.count() == 2
    assert other.materials_panel.list.count() == 3


def test_shading_box_lists_paths_and_switches(make_main_window, qtbot) -> None:
    window = make_main_window()
    viewport = window.viewport
    viewport.setFixedSize(160, 120)
    qtbot.waitUntil(lambda: viewport.pipe is not None or viewport.error is not None, timeout=30_000)
    assert viewport.pipe is not None, viewport.error
    box = window.path_box
    usable, reasons = viewport.paths()
    assert [box.itemData(i) for i in range(box.count())] == ["interop", "glsl", "cpu"]
    model = box.model()
    for i in range(box.count()):
        name = box.itemData(i)
        assert model.item(i).isEnabled() == (name in usable)
        if name not in usable:
            assert model.item(i).toolTip() == reasons[name]  # e.g. no CUDA for interop
    assert box.currentData() == viewport.path
    for name in [p for p in ("glsl", "cpu") if p in usable and p != viewport.path] + [viewport.path]:
        box.setCurrentIndex(box.findData(name))
        box.activated.emit(box.currentIndex())
        assert viewport.path == name == viewport.pipe.path
        qtbot.waitUntil(lambda: viewport.settled and viewport.frames > 0, timeout=30_000)
        viewport.update()
        qtbot.waitUntil(lambda: name in viewport.fps_label.text(), timeout=10_000)


@pytest.mark.parametrize("outcome", ["done", "failed"])
def test_a_job_that_outlives_its_owner_reports_into_nothing(qtbot, outcome) -> None:
    """Closing the window mid-job deletes the signals' owner; the pool thread's report then must
    not raise ('Signal source has been deleted' printed a traceback at exit)."""
    import shiboken6

    from app.materials import _Job, _JobSignals
    from recon.errors import ReconstructError

    def work() -> int:
        if outcome == "failed":
            raise ReconstructError("bad run folder")
        return 1

    signals = _JobSignals()
    received: list = []
    signals.done.connect(lambda *args: received.append(args))
    signals.failed.connect(lambda *args: received.append(args))
    _Job(7, "projection", work, signals).run()  # while the owner lives: delivered
    assert len(received) == 1 and received[0][:2] == (7, "projection")
    shiboken6.delete(signals)
    _Job(8, "projection", work, signals).run()  # after: dropped, no exception
    assert len(received) == 1
