package dnsfault

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/idharness/idharness/fakeimds/duration"
)

// upstream is a real DNS server on loopback, over UDP and TCP, that
// answers every A query with 192.0.2.7 and counts the queries it got.
type upstream struct {
	addr    string
	queries atomic.Int32
}

func startUpstream(t *testing.T) *upstream {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", pc.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close(); l.Close() })
	u := &upstream{addr: pc.LocalAddr().String()}
	go func() {
		buf := make([]byte, 65535)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			_, _ = pc.WriteTo(u.answer(t, buf[:n]), from)
		}
	}()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				for {
					q, err := readTCP(c)
					if err != nil {
						return
					}
					_ = writeTCP(c, u.answer(t, q))
				}
			}()
		}
	}()
	return u
}

// answer is the upstream's answer to q: an A record 192.0.2.7 for an A
// query, no record for any other type.
func (u *upstream) answer(t *testing.T, q []byte) []byte {
	u.queries.Add(1)
	_, end, err := question(q)
	if err != nil {
		t.Errorf("upstream got a malformed query: %v", err)
		return nil
	}
	a := append([]byte{}, q[:end]...)
	binary.BigEndian.PutUint16(a[2:], flagQR|flagRA|0x0100)
	clear(a[6:headerLen])
	if binary.BigEndian.Uint16(q[end-4:]) == 1 { // type A
		binary.BigEndian.PutUint16(a[6:], 1)
		a = append(a, 0xC0, headerLen, 0, 1, 0, 1, 0, 0, 0, 30, 0, 4, 192, 0, 2, 7)
	}
	return a
}

// startResolver starts a resolver in front of up, with a resolv.conf.
func startResolver(t *testing.T, up string) (Addrs, *Client) {
	t.Helper()
	rc := filepath.Join(t.TempDir(), "resolv.conf")
	if err := os.WriteFile(rc, []byte("# a pod's\nsearch run.svc.cluster.local svc.cluster.local cluster.local\nnameserver 10.96.0.10\noptions ndots:5\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	srv, err := New(Config{DNS: "127.0.0.1:0", Control: "127.0.0.1:0", Upstream: up, ResolvConf: rc})
	if err != nil {
		t.Fatal(err)
	}
	a, err := srv.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := srv.Close(context.Background()); err != nil {
			t.Error(err)
		}
	})
	return a, NewClient(a.Control)
}

// lookup resolves name with Go's own resolver (a real DNS client, as
// the Go clients' pods use) over network at addr.
func lookup(ctx context.Context, network, addr, name string) ([]string, error) {
	r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}}
	return r.LookupHost(ctx, name)
}

func isNotFound(err error) bool {
	var de *net.DNSError
	return errors.As(err, &de) && de.IsNotFound
}

// TestResolverFaults: the resolver forwards, answers NXDOMAIN and late
// while a fault lasts, over UDP and TCP, only for the fault's names, and
// forwards again once the fault is removed or has expired.
func TestResolverFaults(t *testing.T) {
	up := startUpstream(t)
	a, ctl := startResolver(t, up.addr)
	ctx := context.Background()
	const host = "wi-authority.idharness.svc"
	for _, network := range []string{"udp", "tcp"} {
		t.Run(network, func(t *testing.T) {
			got, err := lookup(ctx, network, a.DNS, host+".cluster.local.")
			if err != nil || len(got) != 1 || got[0] != "192.0.2.7" {
				t.Fatalf("no fault: %v, %v; want 192.0.2.7 from the upstream", got, err)
			}
			until := time.Now().Add(time.Minute)
			if err := ctl.SetFault(ctx, "nx-"+network, Fault{Names: []string{host}, NXDomain: true, Until: until}); err != nil {
				t.Fatal(err)
			}
			before := up.queries.Load()
			for _, name := range []string{host + ".", host + ".run.svc.cluster.local.", "WI-Authority.IDHarness.svc.cluster.local."} {
				if _, err := lookup(ctx, network, a.DNS, name); !isNotFound(err) {
					t.Errorf("%s during NXDOMAIN: err %v, want not found", name, err)
				}
			}
			if n := up.queries.Load() - before; n != 0 {
				t.Errorf("the upstream got %d queries for the faulted name, want none", n)
			}
			// Other names, one that merely starts like the host too, still resolve.
			for _, name := range []string{"vault.idharness.svc.cluster.local.", host + "x.cluster.local."} {
				if _, err := lookup(ctx, network, a.DNS, name); err != nil {
					t.Errorf("%s during the fault: %v, want it forwarded", name, err)
				}
			}
			rm, err := ctl.RemoveFault(ctx, "nx-"+network)
			if err != nil || rm.Hits < 3 {
				t.Errorf("remove: %+v, %v; want the 3 lookups' queries counted", rm, err)
			}
			if _, err := lookup(ctx, network, a.DNS, host+"."); err != nil {
				t.Errorf("after the fault: %v", err)
			}

			delay := 400 * time.Millisecond
			if err := ctl.SetFault(ctx, "slow-"+network, Fault{Names: []string{host}, Delay: duration.Of(delay), Until: until}); err != nil {
				t.Fatal(err)
			}
			t0 := time.Now()
			got, err = lookup(ctx, network, a.DNS, host+".")
			if took := time.Since(t0); err != nil || took < delay || took > delay+2*time.Second || got[0] != "192.0.2.7" {
				t.Errorf("slow: %v, %v after %v; want the upstream's answer after %v", got, err, took, delay)
			}
			t0 = time.Now()
			if _, err := lookup(ctx, network, a.DNS, "vault.idharness.svc."); err != nil || time.Since(t0) > delay/2 {
				t.Errorf("another name during the slow fault: %v after %v, want it at once", err, time.Since(t0))
			}
			if _, err := ctl.RemoveFault(ctx, "slow-"+network); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestResolverFaultExpires: a fault ends by its Until even if nobody
// removes it.
func TestResolverFaultExpires(t *testing.T) {
	up := startUpstream(t)
	a, ctl := startResolver(t, up.addr)
	ctx := context.Background()
	if err := ctl.SetFault(ctx, "short", Fault{Names: []string{"a.example"}, NXDomain: true, Until: time.Now().Add(300 * time.Millisecond)}); err != nil {
		t.Fatal(err)
	}
	if _, err := lookup(ctx, "udp", a.DNS, "a.example."); !isNotFound(err) {
		t.Fatalf("during the fault: %v, want not found", err)
	}
	time.Sleep(400 * time.Millisecond)
	if _, err := lookup(ctx, "udp", a.DNS, "a.example."); err != nil {
		t.Errorf("after Until: %v, want the upstream's answer", err)
	}
	if _, err := ctl.RemoveFault(ctx, "short"); err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("removing an expired fault: %v, want 404", err)
	}
}

// TestResolverServFail: with the upstream gone, the resolver answers
// SERVFAIL at once rather than leave the client to time out.
func TestResolverServFail(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := pc.LocalAddr().String()
	pc.Close()
	a, _ := startResolver(t, dead)
	_, err = lookup(context.Background(), "tcp", a.DNS, "a.example.")
	var de *net.DNSError
	if !errors.As(err, &de) || de.IsNotFound || strings.Contains(err.Error(), "timeout") {
		t.Errorf("upstream gone: %v, want a server failure", err)
	}
}

// TestControlAPI: the control API refuses bad faults with the reason,
// and serves the resolver's own resolv.conf.
func TestControlAPI(t *testing.T) {
	up := startUpstream(t)
	_, ctl := startResolver(t, up.addr)
	ctx := context.Background()
	if err := ctl.Health(ctx); err != nil {
		t.Fatal(err)
	}
	rc, err := ctl.Resolv(ctx)
	if err != nil || strings.Join(rc.Search, " ") != "run.svc.cluster.local svc.cluster.local cluster.local" ||
		strings.Join(rc.Options, " ") != "ndots:5" || strings.Join(rc.Nameservers, " ") != "10.96.0.10" {
		t.Errorf("resolv: %+v, %v", rc, err)
	}
	if err := ctl.SetFault(ctx, "bad", Fault{Names: []string{"a.example"}, Until: time.Now().Add(time.Minute)}); err == nil || !strings.Contains(err.Error(), "does nothing") {
		t.Errorf("a fault that does nothing: %v", err)
	}
}
