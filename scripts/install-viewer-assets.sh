#!/usr/bin/env bash
# Installs the viewer's pinned browser libraries (MindAR.js, three.js) from src/arv/viewer/package-lock.json
# and copies the few files the AR page loads into src/arv/viewer/static/vendor, each with a gzip copy.
set -euo pipefail
cd "$(dirname "$0")/../src/arv/viewer"

if ! command -v npm >/dev/null 2>&1; then
  # The API runs without them; only the AR page needs them, and it says so when they are missing.
  echo "warning: npm is not installed, so the AR viewer's browser libraries are not; install Node.js and npm," \
       "then run 'make install' again" >&2
  exit 0
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  # --ignore-scripts: only the prebuilt browser files are used; mind-ar's Node-only dependencies
  # (node-canvas) would otherwise try to build or download native code.
  npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
fi

vendor=static/vendor
rm -rf "$vendor"
mkdir -p "$vendor/mind-ar" "$vendor/three/addons/renderers"

mindar=node_modules/mind-ar/dist
cp "$mindar/mindar-image-three.prod.js" "$vendor/mind-ar/"
# The bundle imports chunks whose names carry a content hash: copy the ones it names.
for chunk in $(grep -o '"\./[A-Za-z0-9_-]*\.js"' "$mindar/mindar-image-three.prod.js" | tr -d '"' | sort -u); do
  cp "$mindar/${chunk#./}" "$vendor/mind-ar/"
done
cp node_modules/three/build/three.module.min.js "$vendor/three/"
cp node_modules/three/examples/jsm/renderers/CSS3DRenderer.js "$vendor/three/addons/renderers/"

find "$vendor" -name '*.js' -exec gzip -9 -k -f {} \;
echo "viewer assets installed in src/arv/viewer/$vendor ($(du -sh "$vendor" | cut -f1))"
