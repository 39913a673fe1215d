"""`python -m tessy`."""

import sys

from tessy.cli import main

sys.exit(main())
