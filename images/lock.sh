#!/usr/bin/env bash
# Regenerate every image's constraints file (its lock): the full set of pinned versions,
# resolved once for Python 3.11 on every platform (`--universal`: linux/amd64 and
# linux/arm64 alike, with markers), from pyproject.toml's extras. Run it from the
# repository root after changing dependencies, and commit the result; the test
# tests/images/test_image_locks.py fails when a lock no longer resolves or misses a package.
#   bash images/lock.sh            (needs uv: .venv/bin/uv, installed by `make tools`)
set -euo pipefail
UV=${UV:-.venv/bin/uv}
lock() {
  local image=$1; shift
  "$UV" pip compile pyproject.toml --universal --python-version 3.11 --no-annotate \
    --custom-compile-command "bash images/lock.sh" "$@" -o "images/$image/constraints.txt"
}
lock operator --extra kube
lock gateway images/pins.in --extra train --extra semantic --extra postgres --extra otel --extra speedups
lock trainer images/pins.in --extra train --extra postgres
