#!/usr/bin/env bash
# Builds a self-contained Tributary bundle for a Linux device: the built CLI, production
# node_modules (classic-level ships prebuilt binaries for linux-x64, arm64 and armv7 inside its npm
# package, so node_modules is the same for every architecture) and the official Node binary for the
# target from the npm registry's node-linux-<arch> package. The result runs on a Pi with no Node
# installed: copy it over and run install.sh.
# Usage: deploy/raspberry-pi/build-bundle.sh [arm64|x64|armv7l] [OUT_DIR]
set -euo pipefail
arch=${1:-arm64}
case "$arch" in arm64|x64|armv7l) ;; *) echo "build-bundle.sh: unknown arch '$arch' (arm64, x64, armv7l)" >&2; exit 2;; esac
root=$(cd "$(dirname "$0")/../.." && pwd)
out=${2:-$root/.tmp/bundle-$arch}
node_version=$(node -p 'process.versions.node')

cd "$root"
rm -rf "$out"
mkdir -p "$out/bin" "$out/node"
# Built straight into the bundle: rebuilding the repository's dist/ (tsup cleans it first) would
# pull it from under anything running from it meanwhile (a test suite, a bench).
npx tsup --out-dir "$out/dist" >/dev/null
cp -a package.json package-lock.json README.md "$out/"
cp -a deploy "$out/deploy"
# Production dependencies only; install scripts are not needed (native code comes prebuilt).
(cd "$out" && node deploy/prune-lockfile.mjs && npm ci --omit=dev --ignore-scripts --no-audit --no-fund --loglevel=error)
# The Node binary for the target, same version as the build machine's.
tmp=$(mktemp -d)
(cd "$tmp" && npm pack "node-linux-$arch@$node_version" --silent >/dev/null && tar -xzf node-linux-*.tgz)
cp "$tmp/package/bin/node" "$out/node/node"
rm -rf "$tmp"
cat > "$out/bin/tributary" <<'WRAP'
#!/bin/sh
# Runs the bundled Node on the bundled CLI, wherever the bundle was copied.
here=$(dirname "$(readlink -f "$0")")
exec "$here/../node/node" "$here/../dist/cli.js" "$@"
WRAP
chmod +x "$out/bin/tributary" "$out/node/node"
echo "$out"
