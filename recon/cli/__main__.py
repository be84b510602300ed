"""`python -m recon.cli`: the same as the `reconstruct` command."""

import sys

from recon.cli import main

sys.exit(main())
