"""``python -m recbook ...`` — see :mod:`recbook.cli`."""

import sys

from recbook.cli import main

sys.exit(main())
