package dnsfault

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"net"
	"net/http"
	"os"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/idharness/idharness/internal/netnstest"
)

// query builds a DNS query for an A record of name.
func query(id uint16, name string) []byte {
	q := binary.BigEndian.AppendUint16(nil, id)
	q = append(q, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0) // RD, one question
	for l := range strings.SplitSeq(name, ".") {
		q = append(append(q, byte(len(l))), l...)
	}
	return append(q, 0, 0, 1, 0, 1)
}

// control sends one request to the control API over a connection dialed
// on the calling thread, so in the calling thread's network namespace
// (an http.Client would dial from a goroutine of its own, elsewhere).
func control(method, addr, path, body string) (int, error) {
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	req, err := http.NewRequest(method, "http://"+addr+path, strings.NewReader(body))
	if err != nil {
		return 0, err
	}
	if err := req.Write(c); err != nil {
		return 0, err
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// TestPodCannotSwitchFaults sets up the resolver as in its pod: a
// network namespace of its own, reached from a pod's namespace over a
// veth pair as the pod network does. From the pod, DNS answers, with the
// fault; the control API is not reachable at the resolver's address nor
// at the pod's own loopback, and HTTP sent to the DNS port changes
// nothing. From the resolver's own namespace (where a port-forward ends)
// the control API answers. Needs root (skips without).
func TestPodCannotSwitchFaults(t *testing.T) {
	resolverNS, _ := netnstest.Enter(t)
	podNS, err := netns.New() // the thread is now in the pod's namespace
	if err != nil {
		t.Skipf("cannot create a second network namespace: %v", err)
	}
	defer podNS.Close()
	lo, err := netlink.LinkByName("lo")
	if err == nil {
		err = netlink.LinkSetUp(lo)
	}
	if err2 := netns.Set(resolverNS); err != nil || err2 != nil {
		t.Fatal(err, err2)
	}
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "idh-res0"}, PeerName: "idh-pod0"}
	if err := netlink.LinkAdd(veth); err != nil {
		t.Skipf("cannot create a veth pair here: %v", err)
	}
	addr := func(name, cidr string) {
		t.Helper()
		l, err := netlink.LinkByName(name)
		if err != nil {
			t.Fatal(err)
		}
		a, _ := netlink.ParseAddr(cidr)
		if err := netlink.AddrAdd(l, a); err != nil {
			t.Fatal(err)
		}
		if err := netlink.LinkSetUp(l); err != nil {
			t.Fatal(err)
		}
	}
	peer, err := netlink.LinkByName("idh-pod0")
	if err != nil {
		t.Fatal(err)
	}
	if err := netlink.LinkSetNsFd(peer, int(podNS)); err != nil {
		t.Fatal(err)
	}
	addr("idh-res0", "10.77.0.1/24")
	if err := netns.Set(podNS); err != nil {
		t.Fatal(err)
	}
	addr("idh-pod0", "10.77.0.2/24")
	if err := netns.Set(resolverNS); err != nil {
		t.Fatal(err)
	}

	// Listeners are opened on this thread, so in the resolver's namespace.
	rc := t.TempDir() + "/resolv.conf"
	if err := os.WriteFile(rc, []byte("nameserver 10.96.0.10\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	srv, err := New(Config{DNS: ":0", Control: "127.0.0.1:0", Upstream: "127.0.0.1:9", ResolvConf: rc})
	if err != nil {
		t.Fatal(err)
	}
	a, err := srv.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close(context.Background())
	_, dnsPort, _ := net.SplitHostPort(a.DNS)
	_, ctlPort, _ := net.SplitHostPort(a.Control)

	fault := `{"names":["wi-authority.idharness.svc"],"nxdomain":true,"until":"` + time.Now().Add(time.Minute).UTC().Format(time.RFC3339) + `"}`
	if code, err := control(http.MethodPut, a.Control, "/v1/faults/nx", fault); err != nil || code != http.StatusNoContent {
		t.Fatalf("control API from the resolver's own namespace: %d, %v; want 204", code, err)
	}

	type podResult struct {
		rcode               int
		dnsErr              error
		atResolver, atOwnLo error
		httpOnDNS           error
	}
	done := make(chan podResult, 1)
	go func() {
		// This thread goes into the pod's namespace and never comes
		// back: returning while locked ends the thread.
		runtime.LockOSThread()
		var res podResult
		if err := netns.Set(podNS); err != nil {
			res.dnsErr = err
			done <- res
			return
		}
		res.rcode, res.dnsErr = func() (int, error) {
			c, err := net.DialTimeout("udp", net.JoinHostPort("10.77.0.1", dnsPort), time.Second)
			if err != nil {
				return 0, err
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(2 * time.Second))
			if _, err := c.Write(query(7, "wi-authority.idharness.svc")); err != nil {
				return 0, err
			}
			buf := make([]byte, 512)
			n, err := c.Read(buf)
			if err != nil || n < headerLen {
				return 0, errors.Join(err, errors.New("short answer"))
			}
			return int(binary.BigEndian.Uint16(buf[2:]) & 0xF), nil
		}()
		_, res.atResolver = control(http.MethodDelete, net.JoinHostPort("10.77.0.1", ctlPort), "/v1/faults/nx", "")
		_, res.atOwnLo = control(http.MethodDelete, net.JoinHostPort("127.0.0.1", ctlPort), "/v1/faults/nx", "")
		// HTTP to the DNS port over TCP: read as a DNS message length.
		c, err := net.DialTimeout("tcp", net.JoinHostPort("10.77.0.1", dnsPort), time.Second)
		if err == nil {
			_, res.httpOnDNS = c.Write([]byte("DELETE /v1/faults/nx HTTP/1.1\r\nHost: x\r\n\r\n"))
			c.Close()
		}
		done <- res
	}()
	res := <-done
	if res.dnsErr != nil || res.rcode != rcodeNXDomain {
		t.Errorf("DNS from the pod: rcode %d, %v; want NXDOMAIN (the data port is the pod's to use)", res.rcode, res.dnsErr)
	}
	for what, err := range map[string]error{"the resolver's pod address": res.atResolver, "the pod's own loopback": res.atOwnLo} {
		if !errors.Is(err, syscall.ECONNREFUSED) {
			t.Errorf("control API at %s, from the pod: %v; want the connection refused", what, err)
		}
	}
	if res.httpOnDNS != nil {
		t.Errorf("writing HTTP to the DNS port: %v", res.httpOnDNS)
	}
	time.Sleep(100 * time.Millisecond)
	// The fault is still there: only the resolver's namespace removes it.
	code, err := control(http.MethodDelete, a.Control, "/v1/faults/nx", "")
	if err != nil || code != http.StatusOK {
		t.Errorf("removing the fault from the resolver's namespace: %d, %v; want 200 (the pod must not have removed it)", code, err)
	}
}
