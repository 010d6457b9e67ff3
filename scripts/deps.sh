#!/bin/sh
# Install the Debian packages jetsnap's build, tests, demo and benchmarks need.
set -eu
PKGS="build-essential pkg-config libfuse3-dev fuse3 libssl-dev libsystemd-dev libcriterion-dev \
      libsqlite3-dev sqlite3 redis-tools redis-server procps python3 python3-redis rsync"
if [ "$(id -u)" != 0 ]; then
    echo "scripts/deps.sh: run as root (sudo scripts/deps.sh)" >&2
    exit 1
fi
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y $missing
fi
