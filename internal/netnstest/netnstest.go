// Package netnstest gives a test a network namespace of its own, so that
// tests of netfilter rules and interfaces never touch the host's.
package netnstest

import (
	"os"
	"runtime"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// Enter moves the test's thread into a new network namespace and returns
// the namespace (for code that takes a namespace's file descriptor) and
// its loopback, up. The test goroutine stays locked to that thread until
// the test ends; then it returns to the original namespace. Sockets a
// test opens belong to the namespace of the thread that opens them: this
// one. It skips without root.
func Enter(t testing.TB) (netns.NsHandle, netlink.Link) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to create a network namespace")
	}
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		t.Fatal(err)
	}
	ns, err := netns.New() // also switches this thread into it
	if err != nil {
		orig.Close()
		runtime.UnlockOSThread()
		t.Skipf("cannot create a network namespace here: %v", err)
	}
	// Cleanups run on the test's goroutine, still on this thread.
	t.Cleanup(func() {
		_ = netns.Set(orig)
		ns.Close()
		orig.Close()
		runtime.UnlockOSThread()
	})
	lo, err := netlink.LinkByName("lo")
	if err != nil {
		t.Fatal(err)
	}
	if err := netlink.LinkSetUp(lo); err != nil {
		t.Fatal(err)
	}
	return ns, lo
}
