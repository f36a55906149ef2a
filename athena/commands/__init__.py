"""The `athena` subcommands beyond the loader's (athena/cli.py has generate, encode and
tiny-model, and the parser): `machine` has inspect, doctor and audit; `train_head` has
train-head. Each module registers its parsers; handlers import their backends when they run."""
