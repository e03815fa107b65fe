"""`osr` subcommands of the side libraries and services; each module has `register(subparsers)`."""
