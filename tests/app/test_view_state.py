"""One view state: the viewport's keys, the toolbar, the View menu and the window's own switches
always agree on the mode, the wireframe and the cameras (issue 15, item 3)."""

from __future__ import annotations

from PySide6.QtCore import Qt

from app.view_state import MODES


def _agree(window, mode: str) -> None:
    assert window.viewport.mode == mode
    assert window.mode_box.currentData() == mode
    assert window.mode_actions[mode].isChecked()


def test_keys_toolbar_and_menu_show_the_same_view(make_main_window, small_dataset, qtbot) -> None:
    window = make_main_window()
    with qtbot.waitSignal(window.loader.loaded, timeout=20_000):
        window.open_dataset(small_dataset)
    viewport = window.viewport
    viewport.setFocus()
    for key, mode in zip((Qt.Key.Key_1, Qt.Key.Key_2, Qt.Key.Key_3, Qt.Key.Key_4, Qt.Key.Key_5, Qt.Key.Key_6), MODES):
        qtbot.keyClick(viewport, key)
        _agree(window, mode)

    assert not window.wire_box.isChecked()
    qtbot.keyClick(viewport, Qt.Key.Key_W)
    assert viewport.wireframe and window.wire_box.isChecked() and window.wireframe_action.isChecked()
    assert window.frusta_box.isChecked()
    qtbot.keyClick(viewport, Qt.Key.Key_C)
    assert not viewport.show_frusta and not window.frusta_box.isChecked() and not window.frusta_action.isChecked()

    window.wire_box.setChecked(False)  # the toolbar writes the same state the keys do
    assert not viewport.wireframe and not window.wireframe_action.isChecked()
    window.frusta_action.trigger()  # and so does the menu
    assert viewport.show_frusta and window.frusta_box.isChecked()
    window.mode_actions["flat"].trigger()
    _agree(window, "flat")


def test_a_pick_shows_materials_even_when_the_box_read_materials_before_a_key(make_main_window, qtbot) -> None:
    window = make_main_window()
    window.mode_box.setCurrentIndex(window.mode_box.findData("materials"))
    window.viewport.setFocus()
    qtbot.keyClick(window.viewport, Qt.Key.Key_1)  # the user goes back to the neural image with a key
    _agree(window, "neural")
    window._set_mode("materials")  # what a pick on a material does
    _agree(window, "materials")


def test_view_state_persists_from_keys(make_main_window, qtbot) -> None:
    window = make_main_window()
    window.viewport.setFocus()
    qtbot.keyClick(window.viewport, Qt.Key.Key_3)
    qtbot.keyClick(window.viewport, Qt.Key.Key_C)
    window.close()
    window.settings.sync()
    from app.main_window import MainWindow

    again = MainWindow(window.settings)
    qtbot.addWidget(again)
    assert again.viewport.mode == "smooth" and again.mode_box.currentData() == "smooth"
    assert not again.viewport.show_frusta and not again.frusta_box.isChecked()
    again.close()
