"""``python -m recbook ...`` — see :mod:`recbook.cli`."""

import sys

from .cli import main

sys.exit(main())
