"""What a widget shows, as arrays: the one conversion the GUI tests compare frames with."""

from __future__ import annotations

import numpy as np
from PySide6.QtGui import QImage


def image_pixels(image: QImage) -> np.ndarray:
    """(H, W, 3) uint8 copy of a QImage (rows padded by Qt are cut off)."""
    image = image.convertToFormat(QImage.Format.Format_RGB888)
    w, h = image.width(), image.height()
    data = np.frombuffer(image.constBits(), np.uint8, count=image.bytesPerLine() * h).reshape(h, image.bytesPerLine())
    return data[:, : 3 * w].reshape(h, w, 3).copy()


def grab_viewport(viewport) -> np.ndarray:
    """(H, W, 3) uint8 of what an OpenGL viewport shows."""
    return image_pixels(viewport.grabFramebuffer())
