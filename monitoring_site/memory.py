"""Garbage-collector settings for the long-lived web and worker processes."""

from __future__ import annotations

import gc


def collector_tune() -> None:
    """Keep full collections from pausing request and task threads for ~100 ms.

    A full collection walks every object in the process while all its threads wait; with
    the application loaded that took about 100 ms, and a breaching value arriving
    meanwhile waited with it. The objects loaded before fork live as long as the process:
    frozen, they are left out of every walk. Young collections run less eagerly, since
    each 500-sample batch allocates thousands of short-lived objects. Called once per
    process, right after fork.
    """
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)
