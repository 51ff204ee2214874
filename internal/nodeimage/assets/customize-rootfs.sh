#!/bin/sh
# mmdebstrap customize hook: turn a minbase Debian root file system into a
# kind node base. Arguments:
#   $1 = root file system directory,
#   $2 = kind's images/base/files directory (from the sigs.k8s.io/kind module),
#   $3 = directory holding idharness's node assets.
set -eu
root=$1
kf=$2
as=$3

# kind's node files: entrypoint, /kind helpers, containerd/kubelet/crictl configuration, sysctls.
cp -R "$kf/." "$root/"
# The module cache is read-only; give the copies ordinary modes.
(cd "$kf" && find . -type d) | while read -r d; do chmod 0755 "$root/$d"; done
(cd "$kf" && find . -type f) | while read -r f; do chmod 0644 "$root/$f"; done
chmod 0755 "$root/usr/local/bin/"* "$root/kind/bin/"*
# Debian installs containerd in /usr/bin; kind's unit runs /usr/local/bin/containerd.
ln -sf /usr/bin/containerd "$root/usr/local/bin/containerd"
# Debian's CNI plugins live in /usr/lib/cni; containerd looks in /opt/cni/bin.
mkdir -p "$root/opt/cni/bin" "$root/etc/cni/net.d" "$root/etc/kubernetes/manifests" "$root/kind/manifests"
cp -a "$root/usr/lib/cni/." "$root/opt/cni/bin/"

# The default OCI spec for pods, as kind builds it: containerd's default spec plus
# kind's product-uuid hook, without rlimits.
chroot "$root" ctr oci spec |
  chroot "$root" jq '.hooks.createContainer += [{"path": "/kind/bin/mount-product-files.sh"}] | del(.process.rlimits)' \
    >"$root/etc/containerd/cri-base.json"

# idharness additions: pod routes + CNI config per node, and the containerd
# capability check (restrict_oom_score_adj where CAP_SYS_RESOURCE is missing).
install -m 0755 "$as/idharness-podnet.sh" "$root/usr/local/bin/idharness-podnet"
install -m 0755 "$as/idharness-containerd-caps.sh" "$root/usr/local/bin/idharness-containerd-caps"
install -m 0644 "$as/idharness-podnet.service" "$root/etc/systemd/system/idharness-podnet.service"
mkdir -p "$root/etc/systemd/system/containerd.service.d"
install -m 0644 "$as/containerd-caps.conf" "$root/etc/systemd/system/containerd.service.d/10-idharness-caps.conf"
install -m 0644 "$as/default-cni.yaml" "$root/kind/manifests/default-cni.yaml"
install -m 0644 "$as/default-storage.yaml" "$root/kind/manifests/default-storage.yaml"

# systemd as a container init, trimmed the way kind's base image trims it.
rm -f "$root/lib/systemd/system/sysinit.target.wants/systemd-tmpfiles-setup.service" \
  "$root/lib/systemd/system/multi-user.target.wants/"* \
  "$root/etc/systemd/system/"*.wants/* \
  "$root/lib/systemd/system/local-fs.target.wants/"* \
  "$root/lib/systemd/system/sockets.target.wants/"*udev* \
  "$root/lib/systemd/system/sockets.target.wants/"*initctl* \
  "$root/lib/systemd/system/basic.target.wants/"*
echo "ReadKMsg=no" >>"$root/etc/systemd/journald.conf"
[ -e "$root/sbin/init" ] || ln -s /lib/systemd/systemd "$root/sbin/init"
chroot "$root" systemctl enable kubelet.service containerd.service undo-mount-hacks.service idharness-podnet.service
chroot "$root" systemctl mask systemd-binfmt.service

# Slim down: package lists, caches, docs.
rm -rf "$root/var/lib/apt/lists/"* "$root/var/cache/apt/"*.bin "$root/var/cache/apt/archives/"*.deb \
  "$root/usr/share/doc/"* "$root/usr/share/man/"* "$root/usr/share/locale/"* "$root/var/log/"*.log
