#!/bin/sh
# Install the Debian packages jetsnap's build, tests, demo and benchmarks need,
# and s3rver (npm), the S3-compatible server the archive round trip runs on.
set -eu
PKGS="build-essential pkg-config libfuse3-dev fuse3 libssl-dev libsystemd-dev libcriterion-dev \
      libsqlite3-dev sqlite3 redis-tools redis-server procps python3 python3-redis rsync rclone"
if [ "$(id -u)" != 0 ]; then
    echo "scripts/deps.sh: run as root (sudo scripts/deps.sh)" >&2
    exit 1
fi
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
# A Node.js from elsewhere (nodesource's bundles npm) conflicts with Debian's
# npm: take Debian's only when there is no npm at all.
command -v npm >/dev/null 2>&1 || missing="$missing nodejs npm"
if [ -n "$missing" ]; then
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y $missing
fi
if ! command -v s3rver >/dev/null 2>&1; then
    npm install -g s3rver
fi
