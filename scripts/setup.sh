#!/usr/bin/env bash
# Make this checkout runnable: system packages (scripts/setup-system.sh) and a
# virtualenv in .venv with hotline installed (editable) plus the test tools.
# Idempotent: a second run only checks and returns.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"

bash scripts/setup-system.sh

pick_python() {
  local c
  for c in python3.13 python3.12 python3.11 python3; do
    if command -v "$c" >/dev/null 2>&1 && "$c" -c 'import sys, venv, ensurepip; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
      echo "$c"; return 0
    fi
  done
  return 1
}

if [[ ! -x .venv/bin/python ]]; then
  py=$(pick_python || true)
  if [[ -z "$py" ]]; then
    echo "setup: no Python >= 3.11 with venv; installing python3 python3-venv" >&2
    SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO=sudo
    $SUDO apt-get install -y -qq --no-install-recommends python3 python3-venv python3-dev >/dev/null
    py=$(pick_python) || { echo "setup: Python >= 3.11 is required (found $(python3 --version 2>&1))" >&2; exit 1; }
  fi
  echo "setup: creating .venv with $py"
  "$py" -m venv .venv
fi

# The editable install compiles cti/ami/_speedups.c: it needs a C compiler and
# the headers of the venv's Python (Debian's python3-dev for /usr/bin/python3).
has_headers() {
  .venv/bin/python -c 'import os, sysconfig, sys; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))'
}
if ! command -v gcc >/dev/null 2>&1 || ! has_headers; then
  echo "setup: installing a C compiler and the Python headers (for cti/ami/_speedups.c)"
  SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO=sudo
  $SUDO apt-get install -y -qq --no-install-recommends gcc libc6-dev python3-dev >/dev/null
  has_headers || { echo "setup: no Python.h for $(.venv/bin/python -c 'import sys; print(sys.executable)'); install that Python's development headers" >&2; exit 1; }
fi

stamp=.venv/.hotline-installed
# Reinstall when the project definition or the C accelerator changed (an
# editable install builds cti/ami/_speedups.c in place).
built() { .venv/bin/python -c 'import cti.ami._speedups' >/dev/null 2>&1; }
if [[ ! -f $stamp || pyproject.toml -nt $stamp || setup.py -nt $stamp || cti/ami/_speedups.c -nt $stamp ]] || ! built; then
  echo "setup: installing hotline and its dependencies into .venv"
  .venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip >/dev/null
  # PYTHONWARNINGS: setuptools' editable-install notice is not for users of this script.
  PYTHONWARNINGS=ignore .venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test]'
  touch "$stamp"
fi
