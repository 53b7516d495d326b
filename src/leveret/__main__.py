"""``python -m leveret ...`` is the ``leveret`` command."""

from leveret.cli.main import main

raise SystemExit(main())
