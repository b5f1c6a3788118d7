#!/bin/sh
# A venv with DeepRC's dependencies (pyproject.toml) at the pinned framework versions.
set -eu
# shellcheck source=containers/steps/pip-setup.sh
. /opt/deeprc/steps/pip-setup.sh
# A few dependencies (netifaces) ship no wheel: compile them, then drop the compiler.
export DEBIAN_FRONTEND=noninteractive
build_deps="gcc libc6-dev python${PYTHON_VERSION}-dev"
apt-get update
# shellcheck disable=SC2086  # a list of package names
apt-get install -y --no-install-recommends $build_deps
"python${PYTHON_VERSION}" -m venv "$DEEPRC_VENV"
"$DEEPRC_VENV/bin/python" -c '
import tomllib
with open("/opt/deeprc/src/pyproject.toml", "rb") as f:
    print("\n".join(tomllib.load(f)["project"]["dependencies"]))
' > /tmp/deeprc-requirements.txt
"$DEEPRC_VENV/bin/pip" install "$@" --constraint /tmp/deeprc-constraints.txt \
    -r /tmp/deeprc-requirements.txt \
    "torch==$TORCH_VERSION" \
    "tensorflow${TF_EXTRA}==$TF_VERSION" \
    "tf_keras==$TF_KERAS_VERSION" \
    "neuralforecast==$NEURALFORECAST_VERSION" \
    "radical.pilot==$RADICAL_PILOT_VERSION" \
    "pyarrow==$PYARROW_VERSION" \
    "mpi4py==$MPI4PY_VERSION"
# shellcheck disable=SC2086
apt-get purge -y --auto-remove $build_deps
rm -rf /var/lib/apt/lists/*
