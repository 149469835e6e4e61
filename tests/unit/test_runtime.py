"""The process-wide GC policy the composition roots apply."""

from __future__ import annotations

import gc

from cti.runtime import GC_OLDER_THRESHOLDS, GC_YOUNG_THRESHOLD, tune_gc


def test_tune_gc_freezes_start_up_objects_and_raises_the_thresholds() -> None:
    before = gc.get_threshold()
    try:
        tune_gc()
        assert gc.get_threshold() == (GC_YOUNG_THRESHOLD, *GC_OLDER_THRESHOLDS)
        assert gc.get_freeze_count() > 0
        assert gc.isenabled()  # tuned, never switched off
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
