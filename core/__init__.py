"""What every app shares: error bodies, operator API access, command-line text,
chunked deletes, the audit history's admin page, query parameters, the Redis client
behind the cache, and per-process copies of configuration kept by generation.

The bottom layer: every app may import it, it imports none of them (the `layers`
contract in pyproject.toml, run by `make lint` and by the tests).
"""
