package linklocal

import (
	"net"
	"testing"
	"time"

	"github.com/idharness/idharness/internal/netnstest"
	"github.com/vishvananda/netlink"
)

// TestEnsureInOwnNetns runs Ensure inside a network namespace of its own,
// so the host's interfaces are never touched, then checks that a listener
// on 169.254.169.254 is reachable there and that cleanup removes the
// interface.
func TestEnsureInOwnNetns(t *testing.T) {
	_, lo := netnstest.Enter(t)

	cleanup, err := Ensure("169.254.169.254", DefaultDevice)
	if err != nil {
		t.Fatal(err)
	}
	// Idempotent: a second call keeps the interface.
	again, err := Ensure("169.254.169.254", DefaultDevice)
	if err != nil {
		t.Fatal(err)
	}
	_ = again
	ln, err := net.Listen("tcp", "169.254.169.254:0")
	if err != nil {
		t.Fatalf("listen on the metadata address: %v", err)
	}
	go func() {
		c, err := ln.Accept()
		if err == nil {
			_, _ = c.Write([]byte("ok"))
			c.Close()
		}
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatalf("dial the metadata address: %v", err)
	}
	buf := make([]byte, 2)
	if _, err := c.Read(buf); err != nil || string(buf) != "ok" {
		t.Fatalf("read %q %v", buf, err)
	}
	c.Close()
	ln.Close()
	if err := cleanup(); err != nil {
		t.Fatal(err)
	}
	addrs, _ := netlink.AddrList(lo, netlink.FAMILY_V4)
	for _, a := range addrs {
		if a.IP.Equal(net.ParseIP("169.254.169.254")) {
			t.Error("address left behind after cleanup")
		}
	}
}

// TestHoldExpiresWithoutRenewal checks the address lifetime: renewed while
// held, gone by itself once renewal stops without a clean-up (as when the
// process is killed), and removed at once by cleanup.
func TestHoldExpiresWithoutRenewal(t *testing.T) {
	_, lo := netnstest.Enter(t)
	has := func() bool {
		addrs, _ := netlink.AddrList(lo, netlink.FAMILY_V4)
		for _, a := range addrs {
			if a.IP.Equal(net.ParseIP("169.254.169.254")) {
				return true
			}
		}
		return false
	}
	// Renewed: still there after twice its lifetime.
	cleanup, err := Hold("169.254.169.254", DefaultDevice, 3*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(6 * time.Second)
	if !has() {
		t.Fatal("a held address expired although it was renewed")
	}
	if err := cleanup(); err != nil {
		t.Fatal(err)
	}
	if has() {
		t.Fatal("cleanup left the address")
	}
	// Not renewed (the holder was killed): the kernel drops it.
	if _, err := ensure(&netlink.Handle{}, "169.254.169.254", DefaultDevice, 3*time.Second); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for has() {
		if time.Now().After(deadline) {
			t.Fatal("an address with a 3s lifetime was still there after 10s")
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestProvidedByNetwork checks, in a namespace of its own, that a host
// route to the metadata address (as a cloud's DHCP installs) is seen, and
// that the address on the loopback or no route at all is not.
func TestProvidedByNetwork(t *testing.T) {
	netnstest.Enter(t)
	if got, err := ProvidedByNetwork("169.254.169.254"); err != nil || got {
		t.Fatalf("no route: got %v, %v; want false", got, err)
	}
	cleanup, err := Ensure("169.254.169.254", DefaultDevice)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := ProvidedByNetwork("169.254.169.254"); got {
		t.Error("the address on the loopback (a fakeimds before this one) counted as provided by the network")
	}
	_ = cleanup()
	eth := &netlink.Dummy{LinkAttrs: netlink.LinkAttrs{Name: "eth9"}}
	if err := netlink.LinkAdd(eth); err != nil {
		t.Skipf("cannot create a dummy interface: %v", err)
	}
	link, _ := netlink.LinkByName("eth9")
	_ = netlink.LinkSetUp(link)
	_ = netlink.AddrAdd(link, &netlink.Addr{IPNet: &net.IPNet{IP: net.ParseIP("10.9.0.2").To4(), Mask: net.CIDRMask(24, 32)}})
	// A link-local /16 (zeroconf) is not a metadata service.
	if err := netlink.RouteAdd(&netlink.Route{LinkIndex: link.Attrs().Index, Dst: &net.IPNet{IP: net.ParseIP("169.254.0.0").To4(), Mask: net.CIDRMask(16, 32)}}); err != nil {
		t.Fatal(err)
	}
	if got, _ := ProvidedByNetwork("169.254.169.254"); got {
		t.Error("a 169.254.0.0/16 route counted as a metadata service")
	}
	// Azure's DHCP: 169.254.169.254 via the gateway.
	if err := netlink.RouteAdd(&netlink.Route{LinkIndex: link.Attrs().Index, Dst: &net.IPNet{IP: net.ParseIP("169.254.169.254").To4(), Mask: net.CIDRMask(32, 32)}, Gw: net.ParseIP("10.9.0.1")}); err != nil {
		t.Fatal(err)
	}
	if got, err := ProvidedByNetwork("169.254.169.254"); err != nil || !got {
		t.Errorf("a host route via the gateway: got %v, %v; want true", got, err)
	}
}

func TestEnsureRejectsBadAddress(t *testing.T) {
	for _, ip := range []string{"", "metadata", "fe80::1"} {
		if _, err := Ensure(ip, "x"); err == nil {
			t.Errorf("Ensure(%q) accepted", ip)
		}
	}
}

// TestHostRouteTo judges route tables directly, so the rule is checked on
// machines that cannot create the dummy interface TestProvidedByNetwork
// needs: only a /32 route to the address, not through the loopback, is a
// metadata service the network provides.
func TestHostRouteTo(t *testing.T) {
	md := net.ParseIP("169.254.169.254")
	lo, err := net.InterfaceByName("lo")
	if err != nil {
		t.Skipf("no loopback interface: %v", err)
	}
	const eth = 1 << 30 // no such link: not the loopback
	route := func(cidr string, link int) netlink.Route {
		_, n, err := net.ParseCIDR(cidr)
		if err != nil {
			t.Fatal(err)
		}
		return netlink.Route{Dst: n, LinkIndex: link}
	}
	cases := []struct {
		name   string
		routes []netlink.Route
		want   bool
	}{
		{"default route only", []netlink.Route{{LinkIndex: eth}}, false},
		{"link-local /16", []netlink.Route{route("169.254.0.0/16", eth)}, false},
		{"host route to another address", []netlink.Route{route("168.63.129.16/32", eth)}, false},
		{"host route via the loopback", []netlink.Route{route("169.254.169.254/32", lo.Index)}, false},
		{"host route via the network (Azure DHCP)", []netlink.Route{route("169.254.0.0/16", eth), route("169.254.169.254/32", eth)}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := hostRouteTo(tc.routes, md); got != tc.want {
				t.Fatalf("hostRouteTo = %v, want %v", got, tc.want)
			}
		})
	}
}
