package linklocal

import (
	"net"
	"os"
	"runtime"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// TestEnsureInOwnNetns runs Ensure inside a network namespace of its own,
// so the host's interfaces are never touched, then checks that a listener
// on 169.254.169.254 is reachable there and that cleanup removes the
// interface.
func TestEnsureInOwnNetns(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to create a network namespace")
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		t.Fatal(err)
	}
	defer orig.Close()
	ns, err := netns.New() // also switches this thread into it
	if err != nil {
		t.Skipf("cannot create a network namespace here: %v", err)
	}
	defer func() {
		_ = netns.Set(orig)
		ns.Close()
	}()
	lo, _ := netlink.LinkByName("lo")
	_ = netlink.LinkSetUp(lo)

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

func TestEnsureRejectsBadAddress(t *testing.T) {
	for _, ip := range []string{"", "metadata", "fe80::1"} {
		if _, err := Ensure(ip, "x"); err == nil {
			t.Errorf("Ensure(%q) accepted", ip)
		}
	}
}
