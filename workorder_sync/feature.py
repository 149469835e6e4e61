"""Work orders on the feature contract: created from calls on the agent
desktop, synced to the city 12345 platform through a transactional outbox,
the city's status events applied back."""

from __future__ import annotations

from pathlib import Path

from cti.feature import Feature

__all__ = ["FEATURE"]

FEATURE = Feature(
    name="workorders",
    summary="work orders from calls, synced to the city 12345 platform exactly once and in order",
    migrations=Path(__file__).parent / "migrations",
)
