#!/usr/bin/env bash
# Install (Debian slurm-wlm + munge) and start a real single-node Slurm for tests and the
# `local-slurm` site. Idempotent: returns at once when the node already answers.
# Needs root. Prints `SLURM_READY <nodename>` on success.
set -euo pipefail
# shellcheck source=tests/infra/common.sh
source "$(dirname "$0")/common.sh"

state_dir=${DEEPRC_SLURM_DIR:-/var/tmp/deeprc-slurm}
conf=/etc/slurm/slurm.conf
node=$(hostname -s)

if [ "$(id -u)" != 0 ]; then
    echo "slurm.sh: needs root to install and start slurmctld/slurmd" >&2
    exit 3
fi

mkdir -p /var/lock "$state_dir"
exec 9>/var/lock/deeprc-slurm.lock
if ! flock -w 300 9; then
    echo "slurm.sh: another slurm.sh has held /var/lock/deeprc-slurm.lock for 300 s; see its output" >&2
    exit 1
fi

# Daemons must not inherit the lock (fd 9) nor the caller's stdout/stderr: a daemon holding
# either makes every later caller wait forever (the lock) or never see EOF (a captured pipe).
daemon() { "$@" 9>&- </dev/null >>"$state_dir/daemons.log" 2>&1; }


# By pid file, not by name: the emulated cluster (cluster.sh) runs slurmctld/slurmd daemons too.
ctld_pid=${state_dir}/slurmctld.pid
slurmd_pid=${state_dir}/slurmd.pid
ready() {
    pid_alive "$ctld_pid" && pid_alive "$slurmd_pid" &&
        SLURM_CONF=$conf sinfo -h -N -o '%N %t' 2>/dev/null | grep -qE "^${node} (idle|mix|alloc)"
}

if command -v sinfo >/dev/null 2>&1 && have_pmix && ready; then
    echo "SLURM_READY ${node}"
    exit 0
fi

if install_slurm; then
    # a slurmd started before libpmix was there cannot offer --mpi=pmix: restart it below
    if pid_alive "$slurmd_pid"; then kill "$(cat "$slurmd_pid")"; sleep 1; fi
fi
start_munge "$state_dir/daemons.log"

cpus=$(nproc)
mem_mb=$(awk '/MemTotal/ {printf "%d", $2/1024 * 0.9}' /proc/meminfo)
mkdir -p "$state_dir/ctld" "$state_dir/d" /etc/slurm
cat > "$conf" <<CONF
# Written by DeepRC tests/infra/slurm.sh: a single-node Slurm on ${node}.
ClusterName=deeprc
SlurmctldHost=${node}
SlurmUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MpiDefault=none
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0,sched_min_interval=0
MessageTimeout=30
KillWait=5
MinJobAge=300
StateSaveLocation=${state_dir}/ctld
SlurmdSpoolDir=${state_dir}/d
SlurmctldPidFile=${state_dir}/slurmctld.pid
SlurmdPidFile=${state_dir}/slurmd.pid
SlurmctldLogFile=${state_dir}/slurmctld.log
SlurmdLogFile=${state_dir}/slurmd.log
NodeName=${node} CPUs=${cpus} RealMemory=${mem_mb} State=UNKNOWN
PartitionName=debug Nodes=${node} Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
CONF

pid_alive "$ctld_pid" || daemon slurmctld -f "$conf"
pid_alive "$slurmd_pid" || daemon slurmd -f "$conf"

for _ in $(seq 1 60); do
    if ready; then
        echo "SLURM_READY ${node}"
        exit 0
    fi
    sleep 1
done
echo "slurm.sh: the node did not become idle within 60 s; see ${state_dir}/slurmctld.log and slurmd.log" >&2
sinfo -N -l >&2 || true
exit 1
