"""``python -m leveret.cli.admin ...``: the admin verbs alone (``leveret`` has them too)."""

from leveret.cli.admin.parsers import main

raise SystemExit(main())
