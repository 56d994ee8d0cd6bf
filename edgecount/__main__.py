"""``python -m edgecount``."""

from edgecount.cli import main

raise SystemExit(main())
