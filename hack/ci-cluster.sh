#!/usr/bin/env bash
# hack/ci-cluster.sh: the cluster part of CI (docs/cluster.md).
#
#   1. Docker: install docker.io if missing, start dockerd if none answers, runc
#      wrapper only where the capability bounding set needs it (hack/docker.sh);
#   2. the offline kind node image, built with no registry and cached under a
#      content key (IDHARNESS_CACHE_DIR, default /var/cache/idharness; Docker's
#      image store): cold ~10-25 min on 2 cores, warm seconds;
#   3. the smoke tests (internal/cluster, -tags e2e): a 1-node cluster with
#      fakeimds behind a Service, DNS, the API server and a metadata DNAT to a
#      host-network pod, then a 2-node cluster for the pod network across nodes
#      (IDHARNESS_SKIP_MULTINODE=1 skips it);
#   4. every idharness cluster is deleted at the end, pass or fail.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$HOME/go/bin:$PATH"
GO=${GO:-go}
BIN=${BIN:-bin}
t0=$(date +%s)
phase_start=$t0
phase() {
  local now
  now=$(date +%s)
  [ -n "${phase_name:-}" ] && echo "[ci-cluster] ${phase_name} took $((now - phase_start))s"
  phase_name=$1
  phase_start=$now
  echo "[ci-cluster] == $1"
}

phase "tools"
if ! command -v mmdebstrap >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends mmdebstrap >/dev/null
fi

phase "docker"
GO=$GO hack/docker.sh

mkdir -p "$BIN"
CGO_ENABLED=0 "$GO" build -trimpath -o "$BIN/idharness" ./cmd/idharness
cleanup() {
  local rc=$?
  echo "[ci-cluster] == cleanup: deleting idharness clusters"
  "$BIN/idharness" cluster delete --all || rc=1
  echo "[ci-cluster] total $(($(date +%s) - t0))s (exit $rc)"
  exit $rc
}
trap cleanup EXIT

phase "node image"
"$BIN/idharness" cluster image build

phase "smoke"
IDHARNESS_NODE_IMAGE=offline CGO_ENABLED=0 "$GO" test -tags e2e -count=1 -run 'TestSmoke|TestMultiNode' -v -timeout 40m ./internal/cluster/
phase "done"
