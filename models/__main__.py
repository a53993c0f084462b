"""Allow ``python -m models``."""

from models.cli import main

raise SystemExit(main())
