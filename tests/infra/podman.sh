#!/usr/bin/env bash
# Install and configure podman (Debian 12: podman 4.3 + runc) and make the base image
# localhost/debian:bookworm with debootstrap, since no image registry is reachable.
# Idempotent. Needs root. Prints `PODMAN_READY <image>` on success.
set -euo pipefail

base_ref=${DEEPRC_BASE_IMAGE:-localhost/debian:bookworm}
suite=${DEEPRC_BASE_SUITE:-bookworm}
work=${DEEPRC_PODMAN_DIR:-/var/tmp/deeprc-podman}

if [ "$(id -u)" != 0 ]; then
    echo "podman.sh: needs root to install podman and debootstrap" >&2
    exit 3
fi

mkdir -p /var/lock
exec 9>/var/lock/deeprc-podman.lock
if ! flock -w 900 9; then
    echo "podman.sh: another podman.sh has held /var/lock/deeprc-podman.lock for 900 s; see its output" >&2
    exit 1
fi


need=()
for tool in podman runc debootstrap; do
    command -v "$tool" >/dev/null 2>&1 || need+=("$tool")
done
command -v slirp4netns >/dev/null 2>&1 || need+=(slirp4netns)
command -v fuse-overlayfs >/dev/null 2>&1 || need+=(fuse-overlayfs)
if [ "${#need[@]}" -gt 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends "${need[@]}" uidmap iptables containernetworking-plugins >/dev/null
fi

# crun fails on this hybrid cgroup layout and the default ulimits cannot be set here.
mkdir -p /etc/containers
conf=/etc/containers/containers.conf
if ! grep -q 'DeepRC' "$conf" 2>/dev/null; then
    cat > "$conf" <<'CONF'
# Written by DeepRC tests/infra/podman.sh
[containers]
default_ulimits = []

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
CONF
fi

if ! podman image exists "$base_ref"; then
    mkdir -p "$work"
    root="$work/rootfs-$suite"
    rm -rf "$root"
    debootstrap --variant=minbase "$suite" "$root" >"$work/debootstrap.log" 2>&1 || {
        echo "podman.sh: debootstrap failed; see $work/debootstrap.log" >&2
        exit 1
    }
    tar -C "$root" -c . | podman import - "$base_ref" >/dev/null
    rm -rf "$root"
fi

echo "PODMAN_READY $base_ref"
