"""The command line's pieces for metrics (`tradewatch metrics`), and text helpers it shares.

Each verb of `manage.py tradewatch` lives in its own module with `add_arguments(parser)`
and `run(options, out, err) -> exit code`; the management command only dispatches.
"""
