#!/usr/bin/env bash
# Offline checks of the container and deployment files (part of `make test`); no Docker engine
# and no cluster needed:
#   - hadolint on the Dockerfile, shellcheck on the image's health check, this script and
#     the local stack and cluster scripts;
#   - deploy/compose.yaml against the Compose Specification's JSON schema (the copy
#     check-jsonschema ships), then check_manifests.py (every process a service, dependencies);
#   - deploy/k8s: the base and every overlay rendered by kustomize (kubectl's), validated by
#     kubernetes-validate --strict against the oldest and the newest Kubernetes supported, then
#     check_manifests.py (probes, resources, budgets, autoscalers, ports, references).
# The tools, pinned in check-requirements.txt, are installed into $B2B_STACK_DIR/deploy-venv.
# An overlay is rendered from a copy of deploy/k8s with each `X.env.example` as `X.env`, so a
# real secrets file is never read. Ends with "deploy: N passed, N failed".
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
# shellcheck source-path=SCRIPTDIR source=local/env.sh
. "$HERE/local/env.sh"
REQUIREMENTS="$HERE/check-requirements.txt"
VENV="$B2B_STACK_DIR/deploy-venv"
# Oldest: topologySpreadConstraints' matchLabelKeys is on by default from 1.27.
KUBERNETES_VERSIONS=(1.27 1.37)

log() { echo "deploy: $*" >&2; }

# ------------------------------------------------------------------ tools --
# Reinstalled whenever the pins change (the venv keeps a copy of the file it was made from).
if ! cmp -s "$REQUIREMENTS" "$VENV/check-requirements.txt"; then
    log "installing the pinned check tools into $VENV..."
    [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check -r "$REQUIREMENTS"
    cp "$REQUIREMENTS" "$VENV/check-requirements.txt"
fi
PATH="$VENV/bin:$PATH"

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

passed=0
failed=0
# check NAME COMMAND...: runs one check, its output shown only when it fails.
check() {
    local name=$1 out
    shift
    if out="$("$@" 2>&1)"; then
        passed=$((passed + 1))
        echo "ok      $name"
    else
        failed=$((failed + 1))
        echo "FAILED  $name"
        printf '%s\n' "$out" | sed 's/^/        /'
    fi
}

# kubernetes-validate against each supported version, then the cross-resource checks.
check_rendering() {
    local rendered=$1 version
    shift
    for version in "${KUBERNETES_VERSIONS[@]}"; do
        kubernetes-validate --strict --quiet -k "$version" "$rendered" || return 1
    done
    python "$HERE/check_manifests.py" k8s "$rendered" "$@"
}

ROOT="$(dirname "$HERE")"
check "hadolint Dockerfile" hadolint --no-color "$ROOT/Dockerfile"
check "shellcheck" shellcheck -x "$HERE/container/healthcheck.sh" "$HERE/check.sh" \
    "$HERE/local/stack.sh" "$HERE/cluster/cluster.sh"
check "compose.yaml: Compose Specification schema" \
    check-jsonschema --builtin-schema vendor.compose-spec "$HERE/compose.yaml"
check "compose.yaml: services" python "$HERE/check_manifests.py" compose "$HERE/compose.yaml"

cp -r "$HERE/k8s" "$WORK/k8s"
if check "k8s/base: kustomize" kubectl kustomize "$WORK/k8s/base" -o "$WORK/base.yaml"; then
    # The base names a Secret that only an overlay makes.
    check "k8s/base: kubernetes-validate ${KUBERNETES_VERSIONS[*]}, resources" \
        check_rendering "$WORK/base.yaml"
fi
for overlay in "$WORK"/k8s/overlays/*/; do
    name="k8s/overlays/$(basename "$overlay")"
    for example in "$overlay"/*.env.example; do
        cp "$example" "${example%.example}"
    done
    rendered="$WORK/$(basename "$overlay").yaml"
    if check "$name: kustomize" kubectl kustomize "$overlay" -o "$rendered"; then
        check "$name: kubernetes-validate ${KUBERNETES_VERSIONS[*]}, resources" \
            check_rendering "$rendered" --complete
    fi
done

echo "deploy: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
