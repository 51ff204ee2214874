package partition

import (
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/idharness/idharness/internal/netnstest"
)

func TestCutValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		cut  Cut
		ok   bool
	}{
		{"IPv4", Cut{IP: net.ParseIP("10.96.0.1"), Port: 443, For: 30 * time.Second}, true},
		{"IPv6", Cut{IP: net.ParseIP("fd00::1"), Port: 443, For: 30 * time.Second}, false},
		{"no address", Cut{Port: 443, For: 30 * time.Second}, false},
		{"no port", Cut{IP: net.ParseIP("10.96.0.1"), For: 30 * time.Second}, false},
		{"unbounded", Cut{IP: net.ParseIP("10.96.0.1"), Port: 443}, false},
		{"too long", Cut{IP: net.ParseIP("10.96.0.1"), Port: 443, For: MaxFor + time.Second}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.cut.Exprs()
			if (err == nil) != tc.ok {
				t.Fatalf("err = %v, want ok %v", err, tc.ok)
			}
		})
	}
}

// TestCutInOwnNetns cuts a listener's address in a network namespace of
// the test's own (the host's rules are never touched) and checks that
// connecting fails while the cut holds, works again once the kernel
// expired it, and works at once after Remove. It skips without root.
func TestCutInOwnNetns(t *testing.T) {
	ns, _ := netnstest.Enter(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	addr := ln.Addr().(*net.TCPAddr)
	// Sockets belong to the namespace of the thread that creates them:
	// this one, locked.
	reach := func() bool {
		c, err := net.DialTimeout("tcp", addr.String(), 300*time.Millisecond)
		if err != nil {
			return false
		}
		c.Close()
		return true
	}
	if !reach() {
		t.Fatal("listener unreachable before any cut")
	}
	// An open connection, as a watch is: the server writes once the cut
	// is in place, and the client must not receive it (a cut of only what
	// the client sends lets a stream's data in).
	write := make(chan struct{})
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		<-write
		_, _ = c.Write([]byte("event"))
		time.Sleep(2 * time.Second)
	}()
	stream, err := net.DialTimeout("tcp", addr.String(), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Close()
	cut := Cut{IP: addr.IP, Port: uint16(addr.Port), For: 1500 * time.Millisecond}
	if err := Apply(int(ns), cut); err != nil {
		t.Fatal(err)
	}
	close(write)
	_ = stream.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
	if n, err := stream.Read(make([]byte, 16)); err == nil {
		t.Fatalf("read %d bytes of an open connection through the cut", n)
	}
	if on, err := Active(int(ns)); err != nil || !on {
		t.Fatalf("Active = %v, %v after Apply, want true", on, err)
	}
	if reach() {
		t.Fatal("connected to " + addr.String() + " through the cut")
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		on, err := Active(int(ns))
		if err != nil {
			t.Fatal(err)
		}
		if !on {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the kernel never expired the cut of " + strconv.Itoa(int(cut.For.Milliseconds())) + " ms")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !reach() {
		t.Fatal("unreachable after the cut expired")
	}
	cut.For = time.Minute
	if err := Apply(int(ns), cut); err != nil {
		t.Fatal(err)
	}
	if reach() {
		t.Fatal("connected through the second cut")
	}
	if err := Remove(int(ns)); err != nil {
		t.Fatal(err)
	}
	if !reach() {
		t.Fatal("unreachable after Remove")
	}
	if err := Remove(int(ns)); err != nil {
		t.Fatalf("a second Remove: %v", err)
	}
}
