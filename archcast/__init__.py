"""ArchCast command-line entry point (``archcast``); see ``archcast.cli``."""
