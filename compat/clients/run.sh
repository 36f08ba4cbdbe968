#!/usr/bin/env bash
# Client compatibility matrix: see run.py (installs what is missing, runs every
# client's scenario suite against a fresh broker, writes docs/client-matrix.md).
set -euo pipefail
exec python3 "$(dirname "$0")/run.py" "$@"
