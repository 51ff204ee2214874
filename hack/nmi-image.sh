#!/usr/bin/env bash
# hack/nmi-image.sh CLUSTER: build aad-pod-identity's NMI (v1.8.17, cmd/nmi)
# from the Go module proxy in a throwaway directory outside idharness's
# go.mod, package it as idharness.local/aad-pod-identity-nmi:v1.8.17 with no
# registry, and load it into the kind cluster CLUSTER's nodes; then
# `idharness run --cluster CLUSTER --profile aad-pod-identity` (the profile is
# fixtures/sut/aad-pod-identity/sut.yaml, which names this image).
#
# NMI programs its rules by running `iptables` (coreos/go-iptables), so the
# image carries the iptables of the cluster's own node image (its
# xtables-nft-multi, the libraries ldd names and the xtables extensions),
# copied from a node: the same binary and backend as kube-proxy's.
set -euo pipefail
cluster=${1:?usage: hack/nmi-image.sh CLUSTER (a kind cluster idharness created)}
version=${NMI_VERSION:-v1.8.17}
image=idharness.local/aad-pod-identity-nmi:${version}
export PATH="/usr/local/go/bin:$PATH"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

node=$(docker ps --filter "label=io.x-k8s.kind.cluster=${cluster}" --format '{{.Names}}' | head -1)
[ -n "$node" ] || { echo "no running node of kind cluster ${cluster}: create it first (idharness cluster create --name ${cluster})" >&2; exit 1; }

echo "building NMI ${version} from the module proxy" >&2
dir=$(cd "$work" && GOFLAGS=-mod=mod go mod download -json "github.com/Azure/aad-pod-identity@${version}" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
[ -d "$dir" ] || { echo "go mod download gave no directory for aad-pod-identity@${version}" >&2; exit 1; }
cp -r "$dir" "$work/src" && chmod -R u+w "$work/src"
mkdir -p "$work/root/usr/sbin"
(cd "$work/src" && CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -o "$work/root/usr/sbin/nmi" ./cmd/nmi)

echo "copying iptables from node ${node}" >&2
libs=$(docker exec "$node" sh -c 'ldd /usr/sbin/xtables-nft-multi | grep -o "/[^ ]*"')
docker exec "$node" tar -ch /usr/sbin/xtables-nft-multi $libs /usr/lib/x86_64-linux-gnu/xtables 2>/dev/null | tar -x -C "$work/root"
for n in iptables iptables-save iptables-restore; do ln -sf xtables-nft-multi "$work/root/usr/sbin/$n"; done
mkdir -p "$work/root/tmp" "$work/root/run"

tar -C "$work/root" -c . | docker import --change 'ENV PATH=/usr/sbin:/usr/bin:/sbin:/bin' --change 'ENTRYPOINT ["/usr/sbin/nmi"]' - "$image" >/dev/null
for n in $(docker ps --filter "label=io.x-k8s.kind.cluster=${cluster}" --format '{{.Names}}'); do
  docker save "$image" | docker exec -i "$n" ctr -n k8s.io images import - >/dev/null
  echo "loaded ${image} into ${n}" >&2
done
