"""Process-wide settings the composition roots (``hotline serve``, ``hotline
demo``) apply once the engine is built. Kept out of the library code: a test
or an embedding application keeps the interpreter's defaults."""

from __future__ import annotations

import gc

# Young-generation size of the cyclic garbage collector. The ingest path
# allocates a dict per AMI event and a few records per call change, nearly all
# dead long before any collection; CPython's default of 700 allocations runs a
# collection every ~30 events. 50,000 keeps each pause to a few milliseconds
# (bench/bench_ingest.py: ~5 % more events/s, docs/benchmarks.md).
GC_YOUNG_THRESHOLD = 50_000
GC_OLDER_THRESHOLDS = (50, 100)


def tune_gc() -> None:
    """Freeze what start-up built (configuration, agents, compiled tables) out
    of the collector's scans, and collect the young generation less often."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, *GC_OLDER_THRESHOLDS)
