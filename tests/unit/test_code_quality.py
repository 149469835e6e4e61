"""The codebase's own rules (STYLE.md): ruff clean, including RUF006 (no
dropped task references), and mypy --strict on the pure cores."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PURE_CORES = [
    "cti/calls",
    "cti/events.py",
    "cti/ami",
    "common",
    "acd",
    "cti/config.py",
    "cti/api",
    "cti/control",
    "cti/runtime.py",
    "cti/bus.py",
    "cti/feature.py",
    "cti/features.py",
    "cti/engine.py",
    "cti/agents",
    "cti/console",
    "cti/screenpop",
]


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *argv], cwd=ROOT, capture_output=True, text=True)


def test_ruff_finds_nothing():
    result = _run("ruff", "check", "--no-cache", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_pure_cores_are_mypy_strict_clean():
    result = _run("mypy", "--strict", "--ignore-missing-imports", "--no-incremental", *PURE_CORES)
    assert result.returncode == 0, result.stdout + result.stderr
