#!/usr/bin/env bash
# The README's test command: set up what the machine lacks, then run the suite.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
bash scripts/setup.sh
exec .venv/bin/python -m pytest "$@"
