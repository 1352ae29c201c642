"""The HomeLabPi Discord bot: voice receive, per-speaker clip recording and the upload spool."""
