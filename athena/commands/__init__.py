"""The `athena` subcommands: each module registers its parsers (athena/cli.py calls them)."""
