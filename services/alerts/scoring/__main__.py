"""``python -m services.alerts.scoring``: score JSON lines from stdin."""

from .cli import main

raise SystemExit(main())
