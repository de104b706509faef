"""Settings for the test suite: the project's, with the test broker kept apart.

Redis database 14 (broker) and 15 (cache) keep test messages away from a Tradewatch
running on the same machine (which uses databases 0 and 1 by default).
"""

from __future__ import annotations

import os

os.environ.setdefault("CELERY_BROKER_URL", "redis://127.0.0.1:6379/14")

from monitoring_site.settings import *  # noqa: F403

# Two test runs on one machine (say, a developer's and a hook's) would drop each
# other's test database: give one of them another name.
if os.environ.get("TRADEWATCH_TEST_DATABASE"):
    DATABASES["default"]["TEST"] = {"NAME": os.environ["TRADEWATCH_TEST_DATABASE"]}  # noqa: F405

# Channels deliver to receivers the tests start on loopback.
TRADEWATCH_DELIVERY_ALLOWED_NETWORKS = ["127.0.0.0/8", "::1/128"]
