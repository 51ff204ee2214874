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
	"sync"
	"time"

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
	return ensure(&netlink.Handle{}, ip, dev, 0)
}

// Hold is Ensure with an address lifetime: the address is added valid for
// lifetime and renewed every lifetime/3 until cleanup is called. If the
// process dies without cleaning up (SIGKILL, a kubelet that ran out of
// patience), the kernel removes the address within lifetime, so a node
// never keeps answering at the metadata address for a fake that is gone.
func Hold(ip, dev string, lifetime time.Duration) (cleanup func() error, err error) {
	if lifetime < 3*time.Second {
		return nil, fmt.Errorf("link-local address lifetime %s: want at least 3s", lifetime)
	}
	// A handle opened now stays in this thread's network namespace; the
	// renewals run on other threads, which may be in another one.
	h, err := netlink.NewHandle()
	if err != nil {
		return nil, fmt.Errorf("netlink: %w", err)
	}
	remove, err := ensure(h, ip, dev, lifetime)
	if err != nil {
		h.Close()
		return nil, err
	}
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(lifetime / 3)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				// A failed renewal is retried at the next tick; the
				// address lives on until its lifetime runs out.
				_, _ = ensure(h, ip, dev, lifetime)
			}
		}
	}()
	var once sync.Once
	return func() error {
		once.Do(func() { close(stop) })
		<-done
		defer h.Close()
		return remove()
	}, nil
}

// ProvidedByNetwork reports whether the network this host is on serves ip
// itself: a host route (/32) for it, on an interface other than the
// loopback, as the DHCP of Azure and other clouds installs for their
// metadata service (169.254.169.254 via the gateway). It sends no traffic:
// probing the address would reach whatever answers there, outside the
// host. A fake that took the address on such a host would hide the real
// metadata service from every pod.
func ProvidedByNetwork(ip string) (bool, error) {
	want := net.ParseIP(ip)
	if want == nil || want.To4() == nil {
		return false, fmt.Errorf("address %q: want an IPv4 address", ip)
	}
	routes, err := netlink.RouteList(nil, netlink.FAMILY_V4)
	if err != nil {
		return false, fmt.Errorf("list routes: %w", err)
	}
	return hostRouteTo(routes, want), nil
}

// hostRouteTo reports whether routes hold a /32 route to ip that does not
// go through the loopback.
func hostRouteTo(routes []netlink.Route, ip net.IP) bool {
	for _, r := range routes {
		if r.Dst == nil || !r.Dst.IP.Equal(ip) {
			continue
		}
		if ones, bits := r.Dst.Mask.Size(); ones != bits {
			continue
		}
		if l, err := netlink.LinkByIndex(r.LinkIndex); err == nil && l.Attrs().Flags&net.FlagLoopback != 0 {
			continue
		}
		return true
	}
	return false
}

func ensure(h *netlink.Handle, ip, dev string, lifetime time.Duration) (cleanup func() error, err error) {
	addr := net.ParseIP(ip)
	if addr == nil || addr.To4() == nil {
		return nil, fmt.Errorf("link-local address %q: want an IPv4 address such as 169.254.169.254", ip)
	}
	created := false
	link, err := h.LinkByName(dev)
	if err != nil {
		var notFound netlink.LinkNotFoundError
		if !errors.As(err, &notFound) {
			return nil, fmt.Errorf("look up interface %s: %w", dev, err)
		}
		d := &netlink.Dummy{LinkAttrs: netlink.LinkAttrs{Name: dev}}
		if err := h.LinkAdd(d); err != nil {
			return nil, fmt.Errorf("create dummy interface %s: %w (fakeimds needs CAP_NET_ADMIN and the host network for this)", dev, err)
		}
		created = true
		if link, err = h.LinkByName(dev); err != nil {
			return nil, fmt.Errorf("look up interface %s: %w", dev, err)
		}
	}
	if err := h.LinkSetUp(link); err != nil {
		return nil, fmt.Errorf("bring up %s: %w", dev, err)
	}
	nl := &netlink.Addr{IPNet: &net.IPNet{IP: addr.To4(), Mask: net.CIDRMask(32, 32)}, Scope: int(netlink.SCOPE_HOST)}
	if lifetime > 0 {
		nl.ValidLft = int(lifetime.Seconds())
		nl.PreferedLft = int(lifetime.Seconds())
	}
	if err := h.AddrReplace(link, nl); err != nil {
		return nil, fmt.Errorf("add %s to %s: %w", ip, dev, err)
	}
	return func() error {
		if created {
			if err := h.LinkDel(link); err != nil {
				return fmt.Errorf("remove interface %s: %w", dev, err)
			}
			return nil
		}
		if err := h.AddrDel(link, nl); err != nil {
			return fmt.Errorf("remove %s from %s: %w", ip, dev, err)
		}
		return nil
	}, nil
}
