# shellcheck shell=bash
# Shared pieces of tests/infra/slurm.sh and tests/infra/cluster.sh (sourced, not run).

# pid_alive FILE: the process named in a pid file is running.
pid_alive() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

# Slurm's pmix plugin (srun --mpi=pmix, MPI under srun) loads the unversioned libpmix.so,
# and slurmd only looks for it when it starts.
have_pmix() { ldconfig -p 2>/dev/null | grep -q 'libpmix\.so '; }

# install_slurm: Debian slurm-wlm, munge and libpmix-dev unless all are there already.
# Returns 0 when it installed something (slurmd daemons started before need a restart).
install_slurm() {
    if command -v slurmctld >/dev/null 2>&1 && command -v munged >/dev/null 2>&1 && have_pmix; then
        return 1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        slurm-wlm munge libpmix-dev >/dev/null
}

# start_munge LOG: one munged for every Slurm on this machine (its socket is a path under /run).
start_munge() {
    pgrep -x munged >/dev/null 2>&1 && return 0
    mkdir -p /run/munge /var/log/munge
    chown -R munge:munge /run/munge /var/log/munge /etc/munge 2>/dev/null || true
    [ -f /etc/munge/munge.key ] || /usr/sbin/mungekey --create >/dev/null 2>&1 || true
    chown munge:munge /etc/munge/munge.key 2>/dev/null || true
    runuser -u munge -- /usr/sbin/munged --force 9>&- </dev/null >>"$1" 2>&1 ||
        /usr/sbin/munged --force 9>&- </dev/null >>"$1" 2>&1
}
