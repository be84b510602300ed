"""`reconstruct-gui [DATASET | RUN_DIR]`: start the desktop app, optionally opening a dataset (and
running it) or a run folder (shown as saved: mesh, shader, materials, loss history; nothing written).

SIGINT and SIGTERM close the window the same way its close button does (the run stops after its
current step, a checkpoint is kept, GL is released), so Ctrl-C in the terminal or a session
logout never loses work and the process exits 0.
"""

from __future__ import annotations

import argparse
import logging
import signal
import socket
import sys
from collections.abc import Sequence
from pathlib import Path

from resources import DEMO_SCENES


def _close_on_signals(window) -> None:
    """Route SIGINT/SIGTERM into Qt's event loop (Python handlers cannot run while Qt waits in C++)."""
    from PySide6.QtCore import QSocketNotifier

    reader, writer = socket.socketpair()
    reader.setblocking(False)
    writer.setblocking(False)
    signal.set_wakeup_fd(writer.fileno())
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: None)  # the wakeup fd does the work
    notifier = QSocketNotifier(reader.fileno(), QSocketNotifier.Type.Read, window)

    def on_signal() -> None:
        try:
            reader.recv(64)
        except BlockingIOError:
            return
        logging.getLogger(__name__).info("signal received: closing the window")
        window.close()

    notifier.activated.connect(on_signal)
    window._signal_sockets = (reader, writer, notifier)  # keep them alive with the window


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="reconstruct-gui", description="Desktop app: open a calibrated image set and reconstruct it."
    )
    parser.add_argument("dataset", nargs="?", help="dataset folder or main file, or a run folder, to open at start")
    parser.add_argument("--demo", nargs="?", const="pot", choices=sorted(DEMO_SCENES), metavar="SCENE",
                        help="open a bundled demo scene: pot (the default), part, torus or checker")
    parser.add_argument("--run", action="store_true", help="start reconstructing as soon as the dataset is open "
                        "(not for a run folder: press Resume there)")
    parser.add_argument("--iterations", type=int, help="iterations of that run (default: the Run panel's)")
    parser.add_argument("--out", help="run folder of that run (default: a new folder under the runs location)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    from PySide6.QtWidgets import QApplication

    from app.main_window import MainWindow

    qt_app = QApplication.instance() or QApplication([sys.argv[0]])
    qt_app.setApplicationName("reconstruct-gui")
    window = MainWindow()
    _close_on_signals(window)
    window.show()
    if args.iterations is not None:
        window.run_panel.iterations.setValue(args.iterations)
    if args.run:

        def start(_scene) -> None:
            if args.out:
                window.run_panel.set_out(Path(args.out))
            window.start_run()

        window.loader.loaded.connect(start)
    if args.dataset:
        window.open_dataset(Path(args.dataset))
    elif args.demo:
        window.open_demo(args.demo)
    code = qt_app.exec()
    signal.set_wakeup_fd(-1)
    return code


if __name__ == "__main__":
    sys.exit(main())
