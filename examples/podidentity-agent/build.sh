#!/bin/sh
# Builds the agent into an image archive, _output/agent.tar (sut.yaml's
# images[0].archive), with no registry and no base image: a static binary
# alone in a root file system, imported into the local Docker engine and
# saved from it. Run from anywhere; needs Go and a running Docker engine.
set -eu
cd "$(dirname "$0")"
PATH=$PATH:/usr/local/go/bin
IMAGE=${IMAGE:-example.local/podidentity-agent:v0.1.0}
OUT=_output

rm -rf "$OUT/rootfs"
mkdir -p "$OUT/rootfs"
CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o "$OUT/rootfs/podidentity-agent" .
docker info >/dev/null 2>&1 || { echo "build.sh: no Docker engine answers (in idharness's checkout: make prereqs)" >&2; exit 1; }
tar -C "$OUT/rootfs" --owner=0 --group=0 --numeric-owner -cf - . |
	docker import --change 'ENTRYPOINT ["/podidentity-agent"]' - "$IMAGE" >/dev/null
docker save -o "$OUT/agent.tar" "$IMAGE"
echo "$IMAGE -> $OUT/agent.tar ($(du -h "$OUT/agent.tar" | cut -f1))"
