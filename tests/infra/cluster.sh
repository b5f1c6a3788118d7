#!/usr/bin/env bash
# shellcheck disable=SC2016  # the single-quoted sh -c scripts get their values as arguments
# An emulated N-node Slurm cluster on this one machine, for tests and benchmarks (root).
#
#   cluster.sh [start] [--nodes N] [--cores C]   start (idempotent: returns at once when ready)
#   cluster.sh stop                              stop daemons, remove namespaces, bridge, state
#   cluster.sh exec NODE CMD...                  run CMD inside NODE (its network, hostname, /tmp)
#
# Each node (node1..nodeN) is a network namespace with a veth `eth0` into the host bridge
# deeprc-br0 (10.77.0.0/24, the controller `ctl` at .1, nodeI at .(10+I)), its own hostname,
# /etc/hosts, a resolv.conf with no nameserver and a private tmpfs /tmp; everything else
# (the repository, /work, /root, /var/tmp, venvs) is the host's, like a cluster file system.
# slurmctld runs on the host (own ports 7917/7918 and state folder, beside the single-node
# Slurm of slurm.sh); one munged serves both. Clients use SLURM_CONF=<printed slurm.conf>.
# Prints `CLUSTER_READY <slurm.conf> <node names...>` once `srun -N<n> hostname` reaches every node.
# Env: DEEPRC_CLUSTER_NODES, DEEPRC_CLUSTER_CORES, DEEPRC_CLUSTER_SHARED_TMP (folders under /tmp
# that the nodes share with the host; default: pytest-of-root deeprc-shared). A second, separate
# cluster beside the default one: set all of DEEPRC_CLUSTER_DIR, _PREFIX (node names, default
# node), _NET (first three octets, default 10.77.0), _PORT (slurmctld; slurmd is +1, default 7917)
# and _BRIDGE (default deeprc-br0).
set -euo pipefail
# shellcheck source=tests/infra/common.sh
source "$(dirname "$0")/common.sh"

dir=${DEEPRC_CLUSTER_DIR:-/var/tmp/deeprc-cluster}
conf=$dir/slurm.conf
nodes=${DEEPRC_CLUSTER_NODES:-2}
cores=${DEEPRC_CLUSTER_CORES:-2}
shared_tmp=${DEEPRC_CLUSTER_SHARED_TMP:-pytest-of-root deeprc-shared}
prefix=${DEEPRC_CLUSTER_PREFIX:-node}
bridge=${DEEPRC_CLUSTER_BRIDGE:-deeprc-br0}
net=${DEEPRC_CLUSTER_NET:-10.77.0}
port=${DEEPRC_CLUSTER_PORT:-7917}
ctl_addr=$net.1
wait_s=60

die() { echo "cluster.sh: $*" >&2; exit 1; }

cmd=start
case "${1:-}" in start|stop|exec) cmd=$1; shift ;; esac
if [ "$cmd" = start ]; then
    while [ $# -gt 0 ]; do
        case "$1" in
            --nodes) nodes=${2:?--nodes needs a number}; shift 2 ;;
            --cores) cores=${2:?--cores needs a number}; shift 2 ;;
            *) die "unknown argument '$1'; usage: cluster.sh [start] [--nodes N] [--cores C] | stop | exec NODE CMD..." ;;
        esac
    done
    [[ "$nodes" =~ ^[1-9][0-9]?$ ]] || die "--nodes must be 1..99, got '$nodes'"
    [[ "$cores" =~ ^[1-9][0-9]*$ ]] || die "--cores must be a positive number, got '$cores'"
fi
[ "$(id -u)" = 0 ] || { echo "cluster.sh: needs root (network namespaces, mounts, Slurm daemons)" >&2; exit 3; }

node_names() { seq -f "${prefix}%g" 1 "$nodes"; }
slurmd_pid() { echo "$dir/slurmd-$1.pid"; }
ctld_pid=$dir/slurmctld.pid
sq() { SLURM_CONF=$conf timeout 10 "$@"; }

# The node names of the running cluster's slurm.conf (empty when none).
running_nodes() { if [ -f "$conf" ]; then sed -n 's/^NodeName=\(\S*\) .*/\1/p' "$conf"; fi; }

if [ "$cmd" = exec ]; then
    node=${1:?usage: cluster.sh exec NODE CMD...}; shift
    pid_alive "$(slurmd_pid "$node")" || die "node '$node' is not running (no live $(slurmd_pid "$node")); start the cluster first"
    exec nsenter -t "$(cat "$(slurmd_pid "$node")")" --net --uts --mount --wd="$PWD" -- "$@"
fi

mkdir -p /var/lock
lock=/var/lock/deeprc-cluster-$bridge.lock
exec 9>"$lock"
flock -w 300 9 || die "another cluster.sh has held $lock for 300 s; see its output"

# Daemons must not inherit the lock (fd 9) nor the caller's stdout/stderr (a captured pipe).
daemon() { "$@" 9>&- </dev/null >>"$dir/daemons.log" 2>&1; }

stop_pid() {  # stop_pid PIDFILE: TERM, then KILL after 10 s
    pid_alive "$1" || return 0
    local pid; pid=$(cat "$1")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.2; done
    kill -9 "$pid" 2>/dev/null || true
}

host_hosts() {  # host_hosts add|del: this cluster's node lines in the host's /etc/hosts (rewritten in place)
    local tag="# deeprc-cluster $bridge" kept
    kept=$(grep -v -- "$tag\$" /etc/hosts || true)
    { echo "$kept"; if [ "$1" = add ]; then grep -E " ${prefix}[0-9]+\$" "$dir/hosts" | sed "s/\$/ $tag/"; fi; } > /etc/hosts
}

if [ "$cmd" = stop ]; then
    host_hosts del
    for n in $(running_nodes); do stop_pid "$(slurmd_pid "$n")"; done
    stop_pid "$ctld_pid"
    for ns in $(ip netns list 2>/dev/null | awk -v p="$prefix" '$1 ~ "^" p "[0-9]+$" {print $1}'); do
        # job steps left in the node (each process in it is the cluster's)
        for p in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$p" 2>/dev/null || true; done
        ip netns del "$ns"
    done
    ip link del "$bridge" 2>/dev/null || true
    rm -rf "$dir"
    echo "CLUSTER_STOPPED"
    exit 0
fi

ready() {  # every daemon alive and every node answering (idle, or busy with a job)
    pid_alive "$ctld_pid" || return 1
    local n states
    for n in $(node_names); do pid_alive "$(slurmd_pid "$n")" || return 1; done
    states=$(sq sinfo -h -N -o '%N %t' 2>/dev/null | sort -u) || return 1
    for n in $(node_names); do
        grep -qE "^$n (idle|mix|alloc|comp)\$" <<<"$states" || return 1
    done
}

ready_line() { echo "CLUSTER_READY $conf $(node_names | tr '\n' ' ' | sed 's/ $//')"; }

running=$(running_nodes | tr '\n' ' ' | sed 's/ $//')
if [ -n "$running" ] && pid_alive "$ctld_pid"; then
    [ "$running" = "$(node_names | tr '\n' ' ' | sed 's/ $//')" ] ||
        die "a cluster with nodes '$running' is running, asked for $nodes nodes; run 'cluster.sh stop' first"
    if ready; then host_hosts add; ready_line; exit 0; fi
fi

if install_slurm; then
    for n in $(running_nodes); do stop_pid "$(slurmd_pid "$n")"; done
fi
mkdir -p "$dir/ctld"
start_munge "$dir/daemons.log"

# ---- network: a bridge on the host, one namespace per node with eth0 on the bridge ----
ip link show "$bridge" >/dev/null 2>&1 || ip link add "$bridge" type bridge
ip addr show dev "$bridge" | grep -q "inet $ctl_addr/" || ip addr add "$ctl_addr/24" dev "$bridge"
ip link set "$bridge" up
i=0
for n in $(node_names); do
    i=$((i + 1))
    [ -e "/run/netns/$n" ] || ip netns add "$n"
    if ! ip link show "veth-$n" >/dev/null 2>&1; then
        ip link add "veth-$n" type veth peer name eth0 netns "$n"
    fi
    ip link set "veth-$n" master "$bridge" up
    ip -n "$n" addr show dev eth0 | grep -q "inet $net.$((10 + i))/" || ip -n "$n" addr add "$net.$((10 + i))/24" dev eth0
    ip -n "$n" link set lo up
    ip -n "$n" link set eth0 up
done

# ---- files: hosts, resolver, slurm.conf ----
{
    echo "127.0.0.1 localhost"
    echo "::1 localhost ip6-localhost ip6-loopback"
    echo "$ctl_addr ctl $(hostname -s)"
    i=0; for n in $(node_names); do i=$((i + 1)); echo "$net.$((10 + i)) $n"; done
} > "$dir/hosts"
echo "options timeout:1 attempts:1" > "$dir/resolv.conf"
# The host is the cluster's login node: like a real one it resolves the nodes' names (`salloc` runs
# its command here, and the pilot's agent then finds the interface that routes to the nodes).
host_hosts add


mem_mb=$(awk -v n="$nodes" '/MemTotal/ {printf "%d", $2 / 1024 * 0.9 / n}' /proc/meminfo)
{
    cat <<CONF
# Written by DeepRC tests/infra/cluster.sh: an emulated ${nodes}-node Slurm on this machine.
ClusterName=deeprc-cluster
SlurmctldHost=ctl(${ctl_addr})
SlurmctldPort=${port}
SlurmdPort=$((port + 1))
SlurmUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SlurmdParameters=config_overrides
ReturnToService=2
MpiDefault=none
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0,sched_min_interval=0
MessageTimeout=30
KillWait=5
MinJobAge=300
StateSaveLocation=${dir}/ctld
SlurmdSpoolDir=${dir}/spool-%n
SlurmctldPidFile=${ctld_pid}
SlurmdPidFile=${dir}/slurmd-%n.pid
SlurmctldLogFile=${dir}/slurmctld.log
SlurmdLogFile=${dir}/slurmd-%n.log
CONF
    i=0
    for n in $(node_names); do
        i=$((i + 1))
        echo "NodeName=$n NodeAddr=$net.$((10 + i)) CPUs=$cores RealMemory=$mem_mb State=UNKNOWN"
    done
    echo "PartitionName=mn Nodes=${prefix}[1-$nodes] Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO"
} > "$conf.new"
mv "$conf.new" "$conf"

# ---- daemons ----
pid_alive "$ctld_pid" || daemon unshare --uts sh -c 'hostname ctl && exec slurmctld -f "$1"' sh "$conf"

read -ra shared <<<"$shared_tmp"
for d in "${shared[@]}"; do mkdir -p "/tmp/$d"; chmod 700 "/tmp/$d"; done
for n in $(node_names); do
    pid_alive "$(slurmd_pid "$n")" && continue
    stage=$dir/tmp-$n
    mkdir -p "$stage"
    # In the node's own mount namespace: its hosts and resolver files, and a tmpfs /tmp with
    # the shared folders bound back (mounted at a stage folder, then moved onto /tmp).
    daemon nsenter --net="/run/netns/$n" unshare --uts --mount --propagation private sh -ec '
        n=$1 dir=$2 stage=$3 conf=$4; shift 4
        hostname "$n"
        mount --bind "$dir/hosts" /etc/hosts
        mount --bind "$dir/resolv.conf" /etc/resolv.conf
        mount -t tmpfs -o mode=1777 tmpfs "$stage"
        for d in "$@"; do mkdir -p "$stage/$d"; chmod 700 "$stage/$d"; mount --bind "/tmp/$d" "$stage/$d"; done
        mount --move "$stage" /tmp
        exec slurmd -f "$conf" -N "$n"
    ' sh "$n" "$dir" "$stage" "$conf" "${shared[@]}"
done

deadline=$((SECONDS + wait_s))
until ready; do
    if [ $SECONDS -ge $deadline ]; then
        echo "cluster.sh: the nodes did not all become idle within ${wait_s} s; see $dir/slurmctld.log, $dir/slurmd-<node>.log and $dir/daemons.log" >&2
        sq sinfo -N -l >&2 || true
        exit 1
    fi
    sleep 1
done

want=$(node_names | sort)
got=$(SLURM_CONF=$conf timeout 60 srun -N"$nodes" --ntasks-per-node=1 hostname 2>"$dir/srun-check.err" | sort) || true
if [ "$got" != "$want" ]; then
    echo "cluster.sh: 'srun -N$nodes hostname' answered '${got//$'\n'/ }', expected '${want//$'\n'/ }'; see $dir/srun-check.err and $dir/slurmd-<node>.log" >&2
    cat "$dir/srun-check.err" >&2
    exit 1
fi
ready_line
