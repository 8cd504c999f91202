"""``python -m deeprecipes`` is the ``deeprecipes`` command."""

from .cli import main

raise SystemExit(main())
