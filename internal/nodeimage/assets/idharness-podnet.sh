#!/bin/bash
# idharness-podnet: the pod network of an offline idharness kind node.
#
# Every node runs this loop (a systemd unit baked in the node image, so it
# needs no container image and runs before any pod network exists). It reads
# the nodes with the kubelet's own credentials, writes a bridge + host-local +
# portmap CNI config for this node's pod range (spec.podCIDR, allocated by the
# controller manager), and keeps a route to every other node's pod range via
# that node's InternalIP. All nodes share one Docker network, so plain routes
# are enough (the host-gw model). Traffic from this node's pods is masqueraded
# only when it leaves the pod network, so pods see each other's real addresses
# across nodes.
# The IDH_PODNET_* variables exist for tests; the unit sets none of them.
set -u
kubeconfig=${IDH_PODNET_KUBECONFIG:-/etc/kubernetes/kubelet.conf}
conf=${IDH_PODNET_CONF:-/etc/cni/net.d/10-idharness.conflist}
self=${IDH_PODNET_NODE:-$(hostname)}
interval=${IDH_PODNET_INTERVAL:-5}
once=${IDH_PODNET_ONCE:-}

write_conf() {
  local cidr=$1 tmp
  tmp=$(mktemp "$(dirname "$conf")/.idharness.XXXXXX")
  cat >"$tmp" <<JSON
{
  "cniVersion": "0.4.0",
  "name": "idharness",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "idh0",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {"type": "host-local", "ranges": [[{"subnet": "$cidr"}]], "routes": [{"dst": "0.0.0.0/0"}]}
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
JSON
  chmod 0644 "$tmp"
  mv -f "$tmp" "$conf"
  echo "idharness-podnet: CNI config for $cidr"
}

# sync_masq OWN_CIDR ALL_CIDRS...: masquerade traffic from this node's pods
# unless it goes to a pod range (or multicast). The chain is rebuilt only when
# the set of ranges changes.
masq_sig=""
sync_masq() {
  local own=$1 sig
  shift
  sig="$own;$*"
  [ "$sig" != "$masq_sig" ] || return 0
  iptables -t nat -N IDH-PODNET-MASQ 2>/dev/null || true
  iptables -t nat -F IDH-PODNET-MASQ || return 1
  local c
  for c in "$@"; do
    iptables -t nat -A IDH-PODNET-MASQ -d "$c" -j RETURN || return 1
  done
  iptables -t nat -A IDH-PODNET-MASQ ! -d 224.0.0.0/4 -j MASQUERADE || return 1
  iptables -t nat -C POSTROUTING -s "$own" -j IDH-PODNET-MASQ 2>/dev/null ||
    iptables -t nat -A POSTROUTING -s "$own" -j IDH-PODNET-MASQ || return 1
  masq_sig=$sig
  echo "idharness-podnet: masquerade $own except to $*"
}

while true; do
  if [ -s "$kubeconfig" ]; then
    own=""
    all=()
    lines=$(kubectl --kubeconfig "$kubeconfig" get nodes -o jsonpath='{range .items[*]}{.metadata.name}|{.spec.podCIDR}|{.status.addresses[?(@.type=="InternalIP")].address}{"\n"}{end}' 2>/dev/null) || lines=""
    # Fields are separated by '|': a node without a podCIDR yet leaves that field empty.
    while IFS='|' read -r name cidr ip; do
      [ -n "$name" ] && [[ $cidr == */* ]] || continue
      all+=("$cidr")
      if [ "$name" = "$self" ]; then
        own=$cidr
        grep -q "\"subnet\": \"$cidr\"" "$conf" 2>/dev/null || write_conf "$cidr"
      elif [ -n "$ip" ]; then
        if ! ip route show "$cidr" | grep -q "via $ip "; then
          ip route replace "$cidr" via "$ip" && echo "idharness-podnet: route $cidr via $ip ($name)"
        fi
      fi
    done <<<"$lines"
    [ -z "$own" ] || sync_masq "$own" "${all[@]}"
  fi
  [ -z "$once" ] || exit 0
  sleep "$interval"
done
