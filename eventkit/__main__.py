"""``python -m eventkit``: the command-line interface."""

from eventkit.cli import main

raise SystemExit(main())
