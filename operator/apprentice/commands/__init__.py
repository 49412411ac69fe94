"""One module per ``apprentice`` subcommand; each exposes ``register(subparsers)``."""
