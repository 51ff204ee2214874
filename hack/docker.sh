#!/usr/bin/env bash
# hack/docker.sh: make a Docker engine answer on this machine for idharness's kind clusters.
#
#  1. needs Debian's docker.io (dockerd, containerd, runc): hack/prereqs.sh
#     installs it and then runs this script;
#  2. when the capability bounding set lacks capabilities the kernel knows
#     (CAP_SYS_RESOURCE on some CI VMs), builds idharness's runc wrapper
#     (internal/dockerenv/runcwrap) and registers it as dockerd's default runtime,
#     so `docker run --privileged` (which kind uses) works;
#  3. raises the inotify limits kind nodes need (each node's systemd, kubelet and
#     kube-proxy use inotify instances; with the usual 128 per user a few
#     clusters exhaust them and kube-proxy fails with "too many open files");
#  4. starts dockerd at the default socket if no engine answers there, with an
#     address pool (172.30.0.0/16 unless IDHARNESS_DOCKER_POOL says otherwise)
#     that does not collide with docker0's usual 172.17.0.0/16.
# Idempotent: a second run with an answering, correctly configured engine does nothing.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
GO=${GO:-go}
pool=${IDHARNESS_DOCKER_POOL:-172.30.0.0/16}
libexec=/usr/local/libexec/idharness
wrapper=$libexec/runc-capfilter
runtime_name=idharness-runc
log=${IDHARNESS_DOCKERD_LOG:-/var/log/idharness-dockerd.log}

say() { printf '[docker] %s\n' "$*"; }
die() { printf '[docker] error: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root (it installs packages and starts dockerd)"

command -v dockerd >/dev/null 2>&1 || die "dockerd not found: run make prereqs (hack/prereqs.sh installs docker.io and the rest)"

# Capabilities the kernel knows but our bounding set lacks.
bnd=$((16#$(awk '/^CapBnd:/ {print $2}' /proc/self/status)))
last=$(cat /proc/sys/kernel/cap_last_cap)
missing=""
for ((bit = 0; bit <= last; bit++)); do
  if (( ((bnd >> bit) & 1) == 0 )); then missing+=" $bit"; fi
done

# inotify: kind's known-issues values; only ever raised.
raise_sysctl() {
  local key=$1 want=$2 have
  have=$(sysctl -n "$key" 2>/dev/null || echo 0)
  if [ "$have" -lt "$want" ]; then
    sysctl -qw "$key=$want" && say "$key: $have -> $want"
  fi
}
raise_sysctl fs.inotify.max_user_instances 512
raise_sysctl fs.inotify.max_user_watches 524288

runtime_args=()
if [ -n "$missing" ]; then
  say "capability bounding set lacks bit(s)${missing}: privileged containers need the runc wrapper"
  if [ ! -x "$wrapper" ] || [ "$here/internal/dockerenv/runcwrap/main.go" -nt "$wrapper" ] ||
     [ "$here/internal/dockerenv/spec.go" -nt "$wrapper" ] || [ "$here/internal/dockerenv/caps.go" -nt "$wrapper" ]; then
    mkdir -p "$libexec"
    (cd "$here" && CGO_ENABLED=0 "$GO" build -trimpath -o "$wrapper.tmp" ./internal/dockerenv/runcwrap)
    mv -f "$wrapper.tmp" "$wrapper"
    say "installed $wrapper"
  fi
  runtime_args=(--add-runtime "$runtime_name=$wrapper" --default-runtime "$runtime_name")
fi

if docker version --format '{{.Server.Version}}' >/dev/null 2>&1; then
  rt=$(docker info --format '{{.DefaultRuntime}}' 2>/dev/null || true)
  if [ -n "$missing" ] && [ "$rt" != "$runtime_name" ]; then
    die "a Docker engine answers but its default runtime is '$rt', not $runtime_name;
privileged containers will fail with 'unable to apply caps'. Restart dockerd with:
  ${runtime_args[*]}"
  fi
  say "engine answers ($(docker version --format '{{.Server.Version}}'), default runtime $rt)"
  exit 0
fi

say "starting dockerd (log: $log)"
mkdir -p "$(dirname "$log")"
# setsid: the daemon must outlive this script and the CI step that ran it.
setsid nohup dockerd \
  --default-address-pool "base=$pool,size=24" \
  "${runtime_args[@]}" >>"$log" 2>&1 </dev/null &
for _ in $(seq 1 60); do
  if docker version --format '{{.Server.Version}}' >/dev/null 2>&1; then
    say "engine answers ($(docker version --format '{{.Server.Version}}'), default runtime $(docker info --format '{{.DefaultRuntime}}'))"
    exit 0
  fi
  sleep 1
done
tail -20 "$log" >&2 || true
die "dockerd did not answer within 60s; see $log"
