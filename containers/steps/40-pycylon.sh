#!/bin/sh
# pycylon is not on PyPI: install it only when the site put a wheel of it in
# containers/inputs/wheels (see containers/README.md).
set -eu
# shellcheck source=containers/steps/pip-setup.sh
. /opt/deeprc/steps/pip-setup.sh
found=""
for wheel in /tmp/deeprc-inputs/wheels/pycylon-*.whl; do
    [ -e "$wheel" ] && found="$wheel"
done
if [ -z "$found" ]; then
    echo "no pycylon wheel supplied: skipping"
    exit 0
fi
"$DEEPRC_VENV/bin/pip" install "$@" --constraint /tmp/deeprc-constraints.txt "$found"
"$DEEPRC_VENV/bin/python" -c 'import pycylon; print("pycylon", pycylon.__version__)'
