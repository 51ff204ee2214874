#!/bin/sh
# kube-proxy must program the same iptables backend (legacy or nft) as the node.
# Pick the backend whose tables already hold kubelet's hint chain, else the one
# with more rules, then run the real kube-proxy.
pick() {
  for m in nft legacy; do
    if "iptables-$m-save" -t mangle 2>/dev/null | grep -q KUBE-IPTABLES-HINT; then echo "$m"; return; fi
  done
  l=$( (iptables-legacy-save; ip6tables-legacy-save) 2>/dev/null | grep -c '^-')
  n=$( (iptables-nft-save; ip6tables-nft-save) 2>/dev/null | grep -c '^-')
  if [ "$l" -gt "$n" ]; then echo legacy; else echo nft; fi
}
mode=$(pick)
update-alternatives --set iptables "/usr/sbin/iptables-$mode" >/dev/null
update-alternatives --set ip6tables "/usr/sbin/ip6tables-$mode" >/dev/null
exec /usr/local/bin/kube-proxy.real "$@"
