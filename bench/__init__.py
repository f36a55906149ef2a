"""athena's benchmarks (`nox -s bench`, entry `bench/run.py`): JSON, Markdown and a plot per run.

Nothing here is imported by `athena` or by the test suite's pass/fail; tests/bench only checks
that a `--quick` run writes a well-formed result.
"""
