#!/usr/bin/env bash
# hack/ci-cluster.sh: the cluster part of CI (docs/cluster.md).
#
#   1. prerequisites (hack/prereqs.sh): docker.io and mmdebstrap if missing,
#      then Docker: start dockerd if none answers, runc wrapper only where the
#      capability bounding set needs it, inotify limits for kind nodes
#      (hack/docker.sh);
#   2. the offline kind node image, built with no registry and cached under a
#      content key (IDHARNESS_CACHE_DIR, default /var/cache/idharness; Docker's
#      image store): cold ~10-25 min on 2 cores, warm seconds;
#   3. the smoke tests (internal/cluster, -tags e2e), side by side: Ctrl-C
#      during creation leaving no containers, and a 2-node cluster with
#      fakeimds behind a Service, DNS and pod traffic across nodes, the API
#      server and a metadata DNAT to a host-network pod;
#   4. the smoke clusters are deleted at the end, pass or fail (other clusters,
#      such as a developer's, are left alone).
# IDHARNESS_FORCE_NODE_IMAGE=1 rebuilds the node image even when it is cached.
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

phase "prerequisites and docker"
GO=$GO hack/prereqs.sh

phase "build idharness"
mkdir -p "$BIN"
CGO_ENABLED=0 "$GO" build -trimpath -o "$BIN/idharness" ./cmd/idharness
cleanup() {
  local rc=$?
  echo "[ci-cluster] == cleanup: deleting the smoke clusters"
  for c in idh-smoke idh-interrupt; do "$BIN/idharness" cluster delete --name "$c" || rc=1; done
  echo "[ci-cluster] total $(($(date +%s) - t0))s (exit $rc)"
  exit $rc
}
trap cleanup EXIT

phase "node image"
"$BIN/idharness" cluster image build ${IDHARNESS_FORCE_NODE_IMAGE:+--force}

phase "smoke"
IDHARNESS_BIN="$(cd "$BIN" && pwd)/idharness" IDHARNESS_NODE_IMAGE=offline CGO_ENABLED=0 "$GO" test -tags e2e -count=1 -run 'TestSmoke|TestInterrupt' -v -timeout 40m ./internal/cluster/
phase "done"
