"""File → Recent: newest first, each path once, at most MAX_RECENT, and a choice opens it."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QSettings

from app.recent_menu import MAX_RECENT, RecentMenu


def test_recent_paths_are_newest_first_once_and_capped(qtbot, tmp_path) -> None:
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    menu = RecentMenu(settings)
    assert not menu.isEnabled() and menu.last_folder() == str(Path.home())
    folders = [tmp_path / f"scene{i}" for i in range(MAX_RECENT + 2)]
    for folder in folders:
        folder.mkdir()
        menu.remember(folder)
    menu.remember(folders[3])  # opened again: moves to the top, not listed twice
    listed = [action.text() for action in menu.actions()]
    assert listed[0] == str(folders[3]) and len(listed) == len(set(listed)) == MAX_RECENT
    assert str(folders[0]) not in listed and menu.isEnabled()
    assert menu.last_folder() == str(folders[3])

    dataset_file = folders[5] / "transforms.json"
    dataset_file.write_text("{}")
    menu.remember(dataset_file)  # a file: its folder is where the dialogs start
    assert menu.last_folder() == str(folders[5])

    with qtbot.waitSignal(menu.chosen) as chosen:
        menu.actions()[1].trigger()
    assert chosen.args == [folders[3]]
    assert [a.text() for a in RecentMenu(settings).actions()] == [a.text() for a in menu.actions()]  # kept in the settings
