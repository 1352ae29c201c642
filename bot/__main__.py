"""`python -m bot`: run the Discord bot alone."""

from bot.app import main

raise SystemExit(main())
