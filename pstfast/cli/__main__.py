"""``python -m pstfast.cli``: the same as the ``pstfast`` command."""

import sys

from . import main

sys.exit(main())
