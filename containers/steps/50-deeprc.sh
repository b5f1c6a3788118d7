#!/bin/sh
# DeepRC itself (not editable), then a smoke check of its console script.
set -eu
# shellcheck source=containers/steps/pip-setup.sh
. /opt/deeprc/steps/pip-setup.sh
"$DEEPRC_VENV/bin/pip" install "$@" --constraint /tmp/deeprc-constraints.txt \
    --no-deps /opt/deeprc/src
"$DEEPRC_VENV/bin/deeprc-deploy" --version
