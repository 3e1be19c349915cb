#!/usr/bin/env bash
# The README's first command: installs dependencies, builds, and runs a
# self-contained demo (daemon, local origins and DNS on loopback, a sandbox).
set -euo pipefail
. "$(dirname "$0")/require-root.sh"
cd "$(dirname "$0")/.."
./tools/install-deps.sh
./tools/build.sh
exec /usr/bin/python3 tools/demo.py
