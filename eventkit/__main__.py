"""``python -m eventkit``: the command-line interface."""

from eventkit.workbench.cli import main

raise SystemExit(main())
