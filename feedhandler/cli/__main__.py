"""`python -m feedhandler.cli` (same as `python -m feedhandler`)."""

import sys

from . import main

sys.exit(main())
