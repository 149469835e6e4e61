#!/usr/bin/env bash
# The README's demo command: set up what the machine lacks, then run `hotline demo`.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
bash scripts/setup.sh
exec .venv/bin/hotline demo "$@"
