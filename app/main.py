"""`reconstruct-gui [DATASET]`: start the desktop app, optionally opening a dataset."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="reconstruct-gui", description="Desktop app: open a calibrated image set and reconstruct it."
    )
    parser.add_argument("dataset", nargs="?", help="dataset folder or main file to open at start")
    parser.add_argument("--demo", action="store_true", help="open the bundled demo scene")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    from PySide6.QtWidgets import QApplication

    from app.main_window import MainWindow

    qt_app = QApplication.instance() or QApplication([sys.argv[0]])
    window = MainWindow()
    window.show()
    if args.dataset:
        window.open_dataset(Path(args.dataset))
    elif args.demo:
        window.open_demo()
    return qt_app.exec()


if __name__ == "__main__":
    sys.exit(main())
