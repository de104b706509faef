"""The command line's alert verbs: `tradewatch tail`, `status` and `export`.

Each module has `add_arguments(parser)` and `run(options, out, err) -> exit code`, with
its pure formatting apart from its database reads; the management command
(`monitoring_site/management/commands/tradewatch.py`) only dispatches.
"""
