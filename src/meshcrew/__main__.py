"""Allow ``python -m meshcrew``."""

from meshcrew.cli import main

raise SystemExit(main())
