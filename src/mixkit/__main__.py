"""``python -m mixkit ...`` (and ``torchrun -m mixkit ...``): the ``mixkit`` command."""

import sys

from .cli import main

sys.exit(main())
