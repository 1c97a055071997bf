"""`python -m modelship_server` is `modelship-server`."""

import sys

from .cli import main

sys.exit(main())
