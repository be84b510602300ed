"""The main window in a real X session: open by drop, list views, refuse bad drops and stay usable."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDropEvent
from PySide6.QtWidgets import QApplication, QMessageBox


def _drop(window, path: Path) -> None:
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(path))])
    event = QDropEvent(
        QPointF(10, 10), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier
    )
    window.dropEvent(event)


def test_drop_a_dataset_lists_its_views(make_main_window, small_dataset, qtbot) -> None:
    window = make_main_window()
    with qtbot.waitSignal(window.loader.loaded, timeout=20_000):
        _drop(window, small_dataset)
    assert window.scene is not None and len(window.scene.views) == 5
    assert window.views_panel.count() == 5
    assert window.views_panel.item(0).text() == "v0"
    assert not window.views_panel.item(0).icon().isNull()
    assert "5 views" in window.status.text()
    recent = window.settings.value("paths/recent")
    assert str(small_dataset) in (recent if isinstance(recent, list) else [recent])


def test_bad_drop_shows_an_error_and_keeps_the_scene(make_main_window, small_dataset, tmp_path, qtbot) -> None:
    window = make_main_window()
    with qtbot.waitSignal(window.loader.loaded, timeout=20_000):
        window.open_dataset(small_dataset)
    junk = tmp_path / "not_a_dataset"
    junk.mkdir()
    (junk / "notes.txt").write_text("hello")
    with qtbot.waitSignal(window.loader.failed, timeout=20_000):
        _drop(window, junk)
    assert window.last_error is not None and "not_a_dataset" in window.last_error
    boxes = [w for w in QApplication.topLevelWidgets() if isinstance(w, QMessageBox) and w.isVisible()]
    assert boxes and "not a dataset" in boxes[0].text()
    boxes[0].close()
    assert window.scene is not None and window.views_panel.count() == 5  # nothing the user had is lost
    with qtbot.waitSignal(window.loader.loaded, timeout=20_000):  # and the app still works
        _drop(window, small_dataset / "v1_k.txt")
    assert window.views_panel.count() == 5


def test_geometry_and_recent_persist(make_main_window, small_dataset, qtbot) -> None:
    window = make_main_window()
    window.resize(900, 640)
    with qtbot.waitSignal(window.loader.loaded, timeout=20_000):
        window.open_dataset(small_dataset)
    window.close()
    settings = window.settings
    settings.sync()
    from app.main_window import MainWindow

    again = MainWindow(settings)
    qtbot.addWidget(again)
    assert again.size().width() == 900
    assert [a.text() for a in again.recent_menu.actions()] == [str(small_dataset)]
    again.close()


def test_run_options_and_view_settings_persist(make_main_window, qtbot) -> None:
    window = make_main_window()
    panel = window.run_panel
    panel.iterations.setValue(321)
    panel.seed.setValue(7)
    panel.settings.setText("views_per_step=2 shader.hidden_h=64")
    panel.set_live_rate(0.0)
    window.mode_box.setCurrentIndex(window.mode_box.findData("normals"))
    window.frusta_box.setChecked(False)
    window.close()
    window.settings.sync()
    from app.main_window import MainWindow

    again = MainWindow(window.settings)
    qtbot.addWidget(again)
    assert again.run_panel.iterations.value() == 321 and again.run_panel.seed.value() == 7
    assert again.run_panel.settings.text() == "views_per_step=2 shader.hidden_h=64"
    assert again.run_panel.live_rate_value() == 0.0
    assert again.viewport.mode == "normals" and not again.frusta_box.isChecked()
    again.close()


def test_the_file_menu_offers_every_bundled_demo_scene(make_main_window) -> None:
    from resources import DEMO_SCENES

    window = make_main_window()
    assert set(window.demo_actions) == set(DEMO_SCENES)
    file_menu = window.menuBar().actions()[0].menu()
    assert all(action in file_menu.actions() for action in window.demo_actions.values())


def test_resuming_a_folder_that_is_not_a_run_explains_and_stays_usable(make_main_window, small_dataset, tmp_path, qtbot) -> None:
    window = make_main_window()
    with qtbot.waitSignal(window.loader.loaded, timeout=20_000):
        window.open_dataset(small_dataset)
    window.resume_from(tmp_path)  # no run.json there
    qtbot.waitUntil(lambda: not window.running, timeout=20_000)
    assert "run.json" in window.last_error and "Resume" in window.last_error or "choose a folder" in window.last_error
    boxes = [w for w in QApplication.topLevelWidgets() if isinstance(w, QMessageBox) and w.isVisible()]
    assert boxes and "run.json" in boxes[0].text()
    boxes[0].close()
    assert window.run_panel.start_button.isEnabled()  # ready for a new run
