"""How the viewport draws — shading mode, wireframe, camera frusta, photo opacity — held once.

The toolbar, the View menu, the viewport's keys and the window's own switches (a pick shows the
materials, Replace shows the edited result) all write here and all follow its signals, so no
control can show one thing while the viewport draws another. Setters emit only on a change,
which is what lets a widget that follows a signal write back without looping.
"""

from __future__ import annotations

from PySide6.QtCore import QObject, QSettings, Signal

MODES = ("neural", "normals", "smooth", "flat", "features", "materials")


class ViewState(QObject):
    """The view settings and a signal per setting; see the module docstring."""

    mode_changed = Signal(str)
    wireframe_changed = Signal(bool)
    frusta_changed = Signal(bool)
    opacity_changed = Signal(float)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.mode = "neural"
        self.wireframe = False
        self.frusta = True
        self.opacity = 0.5  # of the input photo over the render when snapped to a view

    def set_mode(self, mode: str) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; known: {MODES}")
        if mode != self.mode:
            self.mode = mode
            self.mode_changed.emit(mode)

    def set_wireframe(self, on: bool) -> None:
        if bool(on) != self.wireframe:
            self.wireframe = bool(on)
            self.wireframe_changed.emit(self.wireframe)

    def set_frusta(self, on: bool) -> None:
        if bool(on) != self.frusta:
            self.frusta = bool(on)
            self.frusta_changed.emit(self.frusta)

    def set_opacity(self, opacity: float) -> None:
        opacity = min(max(float(opacity), 0.0), 1.0)
        if opacity != self.opacity:
            self.opacity = opacity
            self.opacity_changed.emit(opacity)

    def save(self, settings: QSettings) -> None:
        settings.setValue("view/mode", self.mode)
        settings.setValue("view/frusta", self.frusta)
        settings.setValue("view/opacity", round(100 * self.opacity))

    def restore(self, settings: QSettings) -> None:
        """The saved settings; an unknown saved mode (an older version's) leaves the mode as it is."""
        mode = str(settings.value("view/mode", self.mode))
        if mode in MODES:
            self.set_mode(mode)
        self.set_frusta(settings.value("view/frusta", "true") in (True, "true"))
        self.set_opacity(int(settings.value("view/opacity", 50)) / 100)
