#!/bin/sh
# runc cannot lower a pod sandbox's oom_score_adj without CAP_SYS_RESOURCE
# ("can't get final child's PID from pipe: EOF"). Where the node's bounding set
# lacks it, tell containerd to clamp oom_score_adj (restrict_oom_score_adj).
bnd=$(awk '/^CapBnd:/ {print $2}' /proc/self/status)
# bit 24 = CAP_SYS_RESOURCE
if [ $(( (0x$bnd >> 24) & 1 )) -eq 0 ]; then
  sed -i 's/restrict_oom_score_adj = false/restrict_oom_score_adj = true/' /etc/containerd/config.toml
  echo "idharness: CAP_SYS_RESOURCE missing, containerd restrict_oom_score_adj = true"
fi
