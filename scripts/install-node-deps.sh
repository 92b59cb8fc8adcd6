#!/usr/bin/env bash
# Installs the pinned npm packages the tests run (MindAR's own compiler and matcher, the browser driver)
# from their lock files.
set -euo pipefail
cd "$(dirname "$0")/.."
for dir in tests/mindar_client tests/browser; do
  if [ -f "$dir/package-lock.json" ]; then
    if [ ! -d "$dir/node_modules" ] || [ "$dir/package-lock.json" -nt "$dir/node_modules/.package-lock.json" ]; then
      npm ci --prefix "$dir" --no-audit --no-fund --loglevel=error
    fi
  fi
done
