#!/bin/sh
# Create .venv-bench (Llavero + peers) once; later runs only re-check the requirements.
set -eu
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3.11}"
if [ ! -x .venv-bench/bin/python ]; then
    "$PYTHON" -m venv .venv-bench
fi
.venv-bench/bin/pip install --quiet --disable-pip-version-check -e . -r bench/requirements.txt
.venv-bench/bin/pip check
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install -y wrk" >&2; exit 1; }
