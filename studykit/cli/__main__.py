"""`python -m studykit.cli ...` is the `studykit` command."""

import sys

from studykit.cli.commands import main

sys.exit(main())
