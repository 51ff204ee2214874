#!/usr/bin/env bash
# hack/binfmt.sh: let this machine run another architecture's Linux programs,
# which building a client image for that architecture needs (a release's
# linux/arm64 client images on an amd64 machine: docs/release.md). mmdebstrap
# runs the image's Debian maintainer scripts and the program's prepare step
# (pip in a venv, Java's trust store) in the foreign root, under qemu-user.
#
#   hack/binfmt.sh ARCH...        install Debian's qemu-user-static (and arch-test, which
#                                 mmdebstrap --arch asks for) if missing, and register
#                                 the emulator for each GOARCH (arm64, amd64)
#                                 with the kernel's binfmt_misc, flag F (fix binary:
#                                 it runs inside a chroot that has no qemu)
#   hack/binfmt.sh --check ARCH...  exit 1 naming what is missing, change nothing
#
# Registering is global to the kernel (every container on it sees it) and lasts
# until reboot; it only affects programs of that architecture, which could not
# run here before. idharness release runs this when a platform's client images
# need it; make test and make e2e never do.
set -euo pipefail

say() { printf '[binfmt] %s\n' "$*"; }
check=false
if [ "${1:-}" = "--check" ]; then
  check=true
  shift
fi
(($#)) || { say "usage: hack/binfmt.sh [--check] ARCH... (a GOARCH: arm64, amd64)" >&2; exit 2; }

dir=/proc/sys/fs/binfmt_misc
qemu_name() {
  case $1 in
    arm64) echo aarch64 ;;
    amd64) echo x86_64 ;;
    *) say "error: no qemu emulator known for GOARCH $1 (want arm64 or amd64)" >&2; exit 2 ;;
  esac
}
# registered: the handler is enabled and has the F flag.
registered() {
  local f=$dir/qemu-$1
  [ -r "$f" ] && grep -qx enabled "$f" && grep -q '^flags:.*F' "$f"
}

missing=()
command -v arch-test >/dev/null 2>&1 || missing+=(arch-test)
native=$(dpkg --print-architecture 2>/dev/null || true)
for arch in "$@"; do
  q=$(qemu_name "$arch")
  [ "$arch" = "$native" ] && continue # this machine's own: nothing to emulate
  registered "$q" || missing+=("$q")
done
if ((${#missing[@]} == 0)); then
  say "emulation registered for $* (this machine: $native), arch-test present"
  exit 0
fi
if $check; then
  say "missing: $(for m in "${missing[@]}"; do [ "$m" = arch-test ] && printf 'the package arch-test ' || printf 'the binfmt_misc handler qemu-%s ' "$m"; done)- set them up with: hack/binfmt.sh $* (as root; installs Debian's qemu-user-static and arch-test)"
  exit 1
fi
if [ "$(id -u)" != 0 ]; then
  say "error: ${missing[*]/#/qemu-} not registered with binfmt_misc, and registering needs root. Run as root:" >&2
  say "  hack/binfmt.sh $*     (apt-get install -y qemu-user-static, then registers it)" >&2
  exit 1
fi
pkgs=()
command -v arch-test >/dev/null 2>&1 || pkgs+=(arch-test)
handlers=()
for q in "${missing[@]}"; do
  [ "$q" = arch-test ] && continue
  handlers+=("$q")
  [ -f "/usr/lib/binfmt.d/qemu-$q.conf" ] && [ -x "/usr/bin/qemu-$q-static" ] || pkgs+=(qemu-user-static)
done
if ((${#pkgs[@]})); then
  say "installing ${pkgs[*]} from apt (about 30 s)"
  start=$(date +%s)
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null ||
    { say "error: apt-get install ${pkgs[*]} failed; install them by hand (Debian or Ubuntu packages of those names)" >&2; exit 1; }
  say "installed in $(($(date +%s) - start))s"
fi
if [ ! -w "$dir/register" ]; then
  mount -t binfmt_misc binfmt_misc "$dir" ||
    { say "error: cannot mount binfmt_misc on $dir (a container needs --privileged)" >&2; exit 1; }
fi
for q in "${handlers[@]}"; do
  # The package's qemu-$q.conf is systemd-binfmt's format: the register line itself.
  [ -e "$dir/qemu-$q" ] && echo -1 >"$dir/qemu-$q" # a handler without F: replace it
  grep -v '^#' "/usr/lib/binfmt.d/qemu-$q.conf" >"$dir/register" ||
    { say "error: registering qemu-$q with $dir/register failed" >&2; exit 1; }
  registered "$q" || { say "error: qemu-$q registered but not enabled with flag F" >&2; exit 1; }
  say "registered qemu-$q ($(sed -n 's/^interpreter //p' "$dir/qemu-$q"))"
done
