package dnsfault_test

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/idharness/idharness/fakeimds/duration"
	"github.com/idharness/idharness/internal/dnsfault"
	"github.com/idharness/idharness/internal/dnsfault/dnsfaulttest"
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
					q, err := dnsfault.ReadTCP(c)
					if err != nil {
						return
					}
					_ = dnsfault.WriteTCP(c, u.answer(t, q))
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
	_, end, err := dnsfault.Question(q)
	if err != nil {
		t.Errorf("upstream got a malformed query: %v", err)
		return nil
	}
	a := append([]byte{}, q[:end]...)
	binary.BigEndian.PutUint16(a[2:], dnsfault.FlagQR|dnsfault.FlagRA|0x0100)
	clear(a[6:dnsfault.HeaderLen])
	if binary.BigEndian.Uint16(q[end-4:]) == 1 { // type A
		binary.BigEndian.PutUint16(a[6:], 1)
		a = append(a, 0xC0, dnsfault.HeaderLen, 0, 1, 0, 1, 0, 0, 0, 30, 0, 4, 192, 0, 2, 7)
	}
	return a
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

// events returns the events of the resolver's log of kind ev.
func events(t *testing.T, pod *dnsfaulttest.Pod, ev string) []dnsfault.Event {
	t.Helper()
	log, _ := pod.Log(context.Background())
	var out []dnsfault.Event
	for _, e := range dnsfault.ParseEvents(log) {
		if e.Event == ev {
			out = append(out, e)
		}
	}
	return out
}

// TestResolverFaults: the resolver forwards, answers NXDOMAIN and late
// while a fault lasts, over UDP and TCP, only for the fault's names, and
// forwards again once the fault is removed; the faults reach it through
// its pod's annotation and file (Control), and its log counts the
// queries each fault hit.
func TestResolverFaults(t *testing.T) {
	up := startUpstream(t)
	dns, pod := dnsfaulttest.Start(t, up.addr)
	ctl := dnsfault.NewControl(pod)
	ctx := context.Background()
	const host = "wi-authority.idharness.svc"
	for _, network := range []string{"udp", "tcp"} {
		t.Run(network, func(t *testing.T) {
			got, err := lookup(ctx, network, dns, host+".cluster.local.")
			if err != nil || len(got) != 1 || got[0] != "192.0.2.7" {
				t.Fatalf("no fault: %v, %v; want 192.0.2.7 from the upstream", got, err)
			}
			until := time.Now().Add(time.Minute)
			if err := ctl.Set(ctx, "nx-"+network, dnsfault.Fault{Names: []string{host}, NXDomain: true, Until: until}); err != nil {
				t.Fatal(err)
			}
			before := up.queries.Load()
			for _, name := range []string{host + ".", host + ".run.svc.cluster.local.", "WI-Authority.IDHarness.svc.cluster.local."} {
				if _, err := lookup(ctx, network, dns, name); !isNotFound(err) {
					t.Errorf("%s during NXDOMAIN: err %v, want not found", name, err)
				}
			}
			if n := up.queries.Load() - before; n != 0 {
				t.Errorf("the upstream got %d queries for the faulted name, want none", n)
			}
			// Other names, one that merely starts like the host too, still resolve.
			for _, name := range []string{"vault.idharness.svc.cluster.local.", host + "x.cluster.local."} {
				if _, err := lookup(ctx, network, dns, name); err != nil {
					t.Errorf("%s during the fault: %v, want it forwarded", name, err)
				}
			}
			hits, err := ctl.Remove(ctx, "nx-"+network)
			if err != nil || hits < 3 {
				t.Errorf("remove: %d hits, %v; want the 3 lookups' queries counted", hits, err)
			}
			if _, err := lookup(ctx, network, dns, host+"."); err != nil {
				t.Errorf("after the fault: %v", err)
			}

			delay := 400 * time.Millisecond
			if err := ctl.Set(ctx, "slow-"+network, dnsfault.Fault{Names: []string{host}, Delay: duration.Of(delay), Until: until}); err != nil {
				t.Fatal(err)
			}
			t0 := time.Now()
			got, err = lookup(ctx, network, dns, host+".")
			if took := time.Since(t0); err != nil || took < delay || took > delay+2*time.Second || got[0] != "192.0.2.7" {
				t.Errorf("slow: %v, %v after %v; want the upstream's answer after %v", got, err, took, delay)
			}
			t0 = time.Now()
			if _, err := lookup(ctx, network, dns, "vault.idharness.svc."); err != nil || time.Since(t0) > delay/2 {
				t.Errorf("another name during the slow fault: %v after %v, want it at once", err, time.Since(t0))
			}
			if _, err := ctl.Remove(ctx, "slow-"+network); err != nil {
				t.Fatal(err)
			}
		})
	}
	applied := events(t, pod, dnsfault.EventApplied)
	if len(applied) != 4 || applied[0].Fault != "nx-udp" || applied[0].Spec == nil || !applied[0].Spec.NXDomain || applied[0].Seq != 1 {
		t.Errorf("applied events %+v, want the 4 faults, the first nx-udp by seq 1", applied)
	}
	if st := events(t, pod, dnsfault.EventState); len(st) != 8 || st[7].Seq != 8 || len(st[7].Active) != 0 {
		t.Errorf("state events %+v, want one per write, the last (seq 8) with nothing active", st)
	}
}

// TestResolverFaultExpires: a fault ends by its Until even if nobody
// removes it, and says so with its hits, which Remove then reports.
func TestResolverFaultExpires(t *testing.T) {
	up := startUpstream(t)
	dns, pod := dnsfaulttest.Start(t, up.addr)
	ctl := dnsfault.NewControl(pod)
	ctx := context.Background()
	// Long enough for Set to see it applied on a loaded machine.
	until := time.Now().Add(1500 * time.Millisecond)
	if err := ctl.Set(ctx, "short", dnsfault.Fault{Names: []string{"a.example"}, NXDomain: true, Until: until}); err != nil {
		t.Fatal(err)
	}
	if _, err := lookup(ctx, "udp", dns, "a.example."); !isNotFound(err) {
		t.Fatalf("during the fault: %v, want not found", err)
	}
	time.Sleep(time.Until(until) + 3*dnsfault.FaultsPoll)
	if _, err := lookup(ctx, "udp", dns, "a.example."); err != nil {
		t.Errorf("after Until: %v, want the upstream's answer", err)
	}
	// The one lookup asked for A and AAAA.
	if ex := events(t, pod, dnsfault.EventExpired); len(ex) != 1 || ex[0].Fault != "short" || ex[0].Hits != 2 {
		t.Errorf("expired events %+v, want short's, with its 2 hits", ex)
	}
	if hits, err := ctl.Remove(ctx, "short"); err != nil || hits != 2 {
		t.Errorf("removing an expired fault: %d, %v; want its 2 hits", hits, err)
	}
	if rm := events(t, pod, dnsfault.EventRemoved); len(rm) != 0 {
		t.Errorf("removed events %+v after the fault expired, want none", rm)
	}
}

// TestResolverServFail: with the upstream gone, the resolver answers
// SERVFAIL at once rather than leave the client to time out, and logs
// the failure.
func TestResolverServFail(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := pc.LocalAddr().String()
	pc.Close()
	dns, pod := dnsfaulttest.Start(t, dead)
	_, err = lookup(context.Background(), "tcp", dns, "a.example.")
	var de *net.DNSError
	if !errors.As(err, &de) || de.IsNotFound || strings.Contains(err.Error(), "timeout") {
		t.Errorf("upstream gone: %v, want a server failure", err)
	}
	if ff := events(t, pod, dnsfault.EventForwardFailed); len(ff) == 0 || ff[0].Name != "a.example" || ff[0].Error == "" {
		t.Errorf("forward-failed events %+v, want a.example's", ff)
	}
}

// TestResolverReady: the resolver's first line says it is ready and
// carries its resolv.conf, which Ready returns.
func TestResolverReady(t *testing.T) {
	up := startUpstream(t)
	dns, pod := dnsfaulttest.Start(t, up.addr)
	rc, err := dnsfault.NewControl(pod).Ready(context.Background())
	if err != nil || strings.Join(rc.Search, " ") != "run.svc.cluster.local svc.cluster.local cluster.local" ||
		strings.Join(rc.Options, " ") != "ndots:5" || !slices.Equal(rc.Nameservers, []string{"10.96.0.10"}) {
		t.Errorf("resolv: %+v, %v", rc, err)
	}
	if r := events(t, pod, dnsfault.EventReady); len(r) != 1 || r[0].DNS != dns {
		t.Errorf("ready events %+v, want one with %s", r, dns)
	}
}
