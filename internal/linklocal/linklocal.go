// Package linklocal puts the metadata address (169.254.169.254) on an
// interface of the host (the loopback by default), so that a fake metadata service on the
// host network answers there, as IMDS does on every Azure VM: pods reach
// it through their node like any node-local address, and nothing leaves
// the node.
package linklocal

import (
	"errors"
	"fmt"
	"net"

	"github.com/vishvananda/netlink"
)

// DefaultDevice is the interface the address goes on. The loopback exists
// everywhere, needs no kernel module (a dummy interface does, and kind
// nodes may not have it), and Linux accepts traffic for any local address
// whichever interface carries it.
const DefaultDevice = "lo"

// Ensure adds ip/32 to interface dev, creating dev as a dummy interface if
// it does not exist, and returns a function that removes what Ensure
// added. It needs CAP_NET_ADMIN.
func Ensure(ip, dev string) (cleanup func() error, err error) {
	addr := net.ParseIP(ip)
	if addr == nil || addr.To4() == nil {
		return nil, fmt.Errorf("link-local address %q: want an IPv4 address such as 169.254.169.254", ip)
	}
	created := false
	link, err := netlink.LinkByName(dev)
	if err != nil {
		var notFound netlink.LinkNotFoundError
		if !errors.As(err, &notFound) {
			return nil, fmt.Errorf("look up interface %s: %w", dev, err)
		}
		d := &netlink.Dummy{LinkAttrs: netlink.LinkAttrs{Name: dev}}
		if err := netlink.LinkAdd(d); err != nil {
			return nil, fmt.Errorf("create dummy interface %s: %w (fakeimds needs CAP_NET_ADMIN and the host network for this)", dev, err)
		}
		created = true
		if link, err = netlink.LinkByName(dev); err != nil {
			return nil, fmt.Errorf("look up interface %s: %w", dev, err)
		}
	}
	if err := netlink.LinkSetUp(link); err != nil {
		return nil, fmt.Errorf("bring up %s: %w", dev, err)
	}
	nl := &netlink.Addr{IPNet: &net.IPNet{IP: addr.To4(), Mask: net.CIDRMask(32, 32)}, Scope: int(netlink.SCOPE_HOST)}
	if err := netlink.AddrReplace(link, nl); err != nil {
		return nil, fmt.Errorf("add %s to %s: %w", ip, dev, err)
	}
	return func() error {
		if created {
			if err := netlink.LinkDel(link); err != nil {
				return fmt.Errorf("remove interface %s: %w", dev, err)
			}
			return nil
		}
		if err := netlink.AddrDel(link, nl); err != nil {
			return fmt.Errorf("remove %s from %s: %w", ip, dev, err)
		}
		return nil
	}, nil
}
