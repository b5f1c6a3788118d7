#!/bin/sh
# System packages: the requested Python, CA certificates, ssh for multi-node MPI launch,
# and the non-root default user.
set -eu
export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y --no-install-recommends \
    "python${PYTHON_VERSION}" "python${PYTHON_VERSION}-venv" \
    ca-certificates procps openssh-client
rm -rf /var/lib/apt/lists/*
found=$("python${PYTHON_VERSION}" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
if [ "$found" != "$PYTHON_VERSION" ]; then
    echo "error: the base image gave Python $found, not PYTHON_VERSION=$PYTHON_VERSION" >&2
    exit 1
fi
useradd --create-home --uid "$DEEPRC_UID" --shell /bin/bash deeprc
mkdir -p /opt/deeprc/src
