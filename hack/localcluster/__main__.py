"""`python -m modelship_localcluster`."""

import sys

from .cli import main

sys.exit(main())
