"""The command line's pieces for metrics (`tradewatch metrics`, the sources' listing).

Each verb of `manage.py tradewatch` lives in its own module with `add_arguments(parser)`
and `run(options, out, err) -> exit code`; the management command only dispatches.
The text helpers every verb shares are `core.cli_text`.
"""
