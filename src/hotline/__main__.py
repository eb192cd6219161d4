"""`python -m hotline` is the `hotline` command."""

import sys

from hotline.cli.app import main

sys.exit(main())
