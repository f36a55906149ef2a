"""The `athena` subcommands (athena/cli.py builds the parser): each module registers its
parsers; handlers import their backends when they run."""
