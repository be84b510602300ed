"""`reconstruct`: the engine, headless. Every failure on bad input is one line on stderr and exit 2.

`parser` builds the command line, `commands` runs each subcommand, `report` prints.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

import numpy as np

from recon.cli.parser import build_parser
from recon.errors import ReconstructError

EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130


def _dispatch(args: argparse.Namespace) -> int:
    """Run the command, with dataset files outside their folder allowed only when the user said so."""
    if not getattr(args, "allow_outside_dataset", False):
        return args.func(args)
    from recon.data.paths import allow_outside

    with allow_outside():
        return args.func(args)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    level = [logging.WARNING, logging.INFO, logging.DEBUG][min(args.verbose, 2)]
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    np.set_printoptions(suppress=True)
    try:
        return _dispatch(args)
    except ReconstructError as exc:  # one line, even when a library's message had several
        message = " ".join(part.strip() for part in str(exc).splitlines() if part.strip())
        print(f"reconstruct: error: {message}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("reconstruct: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # output piped into `head` and closed early: not an error
        sys.stderr.close()
        return 0
