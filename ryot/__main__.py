"""`python -m ryot` is the `ryot` command."""

import sys

from ryot.cli import main

sys.exit(main())
