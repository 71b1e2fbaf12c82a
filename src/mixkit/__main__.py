"""``python -m mixkit ...`` (and ``torchrun -m mixkit ...``): the ``mixkit`` command."""

import sys

from .harness.cli import main

sys.exit(main())
