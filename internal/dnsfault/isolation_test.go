package dnsfault_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/idharness/idharness/internal/dnsfault"
	"github.com/idharness/idharness/internal/dnsfault/dnsfaulttest"
	"github.com/idharness/idharness/internal/netnstest"
)

// openPorts lists the sockets that take connections or datagrams from
// anyone, as the kernel's socket tables of a network namespace say
// (/proc/thread-self/net/tcp, tcp6, udp, udp6, keyed by those names):
// TCP sockets listening, and UDP sockets bound but connected to no peer.
// Each is "tcp :PORT" or "udp :PORT".
func openPorts(tables map[string]string) ([]string, error) {
	var out []string
	for _, name := range slices.Sorted(maps.Keys(tables)) {
		proto := strings.TrimRight(name, "6")
		for i, line := range strings.Split(strings.TrimSpace(tables[name]), "\n") {
			f := strings.Fields(line)
			if i == 0 || len(f) < 4 {
				continue // the header
			}
			_, port, ok := strings.Cut(f[1], ":")
			_, remPort, ok2 := strings.Cut(f[2], ":")
			p, err := strconv.ParseUint(port, 16, 16)
			if !ok || !ok2 || err != nil {
				return nil, fmt.Errorf("%s: line %q: no local address", name, line)
			}
			switch {
			case proto == "tcp" && f[3] == "0A": // TCP_LISTEN
			case proto == "udp" && remPort == "0000":
			default:
				continue
			}
			if s := fmt.Sprintf("%s :%d", proto, p); !slices.Contains(out, s) {
				out = append(out, s)
			}
		}
	}
	return out, nil
}

// readTables reads the socket tables of the calling thread's network
// namespace.
func readTables(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, n := range []string{"tcp", "tcp6", "udp", "udp6"} {
		b, err := os.ReadFile("/proc/thread-self/net/" + n)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
		out[n] = string(b)
	}
	return out
}

// TestOpenPorts: the listing finds a listener beside DNS, such as the
// control API the resolver had on loopback (127.0.0.1:8053), which fails
// TestPodCannotSwitchFaults.
func TestOpenPorts(t *testing.T) {
	const tcpHead = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
	const udpHead = "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops\n"
	dnsOnly := map[string]string{
		"tcp": tcpHead + "   0: 00000000:0035 00000000:0000 0A 00000000:00000000 00:00000000 00000000 65532        0 1 1 0 100 0 0 10 0\n" +
			"   1: 0100000A:0035 0200000A:C350 01 00000000:00000000 00:00000000 00000000 65532        0 2 1 0 20 4 30 10 -1\n",
		"tcp6": tcpHead,
		"udp": udpHead + "  5: 00000000:0035 00000000:0000 07 00000000:00000000 00:00000000 00000000 65532        0 3 2 0 0\n" +
			// A forwarded query's socket, connected to the upstream.
			"  6: 0100007F:D431 0A00600A:0035 01 00000000:00000000 00:00000000 00000000 65532        0 4 2 0 0\n",
		"udp6": udpHead,
	}
	withControl := maps.Clone(dnsOnly)
	withControl["tcp"] += "   2: 0100007F:1F75 00000000:0000 0A 00000000:00000000 00:00000000 00000000 65532        0 5 1 0 100 0 0 10 0\n"
	for _, tc := range []struct {
		name   string
		tables map[string]string
		want   []string
		err    string
	}{
		{"DNS only", dnsOnly, []string{"tcp :53", "udp :53"}, ""},
		{"a control API on loopback", withControl, []string{"tcp :53", "tcp :8053", "udp :53"}, ""},
		{"garbled", map[string]string{"tcp": tcpHead + "   0: nonsense x y z\n"}, nil, "no local address"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := openPorts(tc.tables)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Errorf("error %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil || !slices.Equal(got, tc.want) {
				t.Errorf("openPorts = %v, %v; want %v", got, err, tc.want)
			}
		})
	}
}

// TestPodCannotSwitchFaults sets up the resolver as in its pod: a
// network namespace of its own, reached from a pod's namespace over a
// veth pair as the pod network does. The resolver takes its faults from
// a file (in its pod, the downward API file of its own annotation, which
// only a client with the right to patch pods can write, and the pods
// under test have no rights), and listens on nothing but DNS: the
// socket tables of its namespace show DNS over UDP and TCP and nothing
// else (a listener beside it, as the control API on loopback was, fails
// the test). From the pod, DNS answers with the fault, and what a pod can
// send the one port it reaches (HTTP over TCP, garbage over UDP) leaves
// the fault in force. Needs root (skips without).
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
	dir := t.TempDir()
	rc, faults := filepath.Join(dir, "resolv.conf"), filepath.Join(dir, "dns-faults")
	if err := os.WriteFile(rc, []byte("nameserver 10.96.0.10\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	pod := &dnsfaulttest.Pod{File: faults}
	srv, err := dnsfault.New(dnsfault.Config{DNS: ":0", Upstream: "127.0.0.1:9", ResolvConf: rc, FaultsFile: faults, Events: pod})
	if err != nil {
		t.Fatal(err)
	}
	a, err := srv.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	_, dnsPort, _ := net.SplitHostPort(a)

	open, err := openPorts(readTables(t))
	if want := []string{"tcp :" + dnsPort, "udp :" + dnsPort}; err != nil || !slices.Equal(open, want) {
		t.Errorf("open ports in the resolver's namespace: %v, %v; want %v, DNS alone", open, err, want)
	}
	// The check sees a listener beside DNS, as the control API was.
	ctl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if open, _ := openPorts(readTables(t)); len(open) != 3 {
		t.Errorf("open ports with a loopback listener beside DNS: %v, want it listed", open)
	}
	ctl.Close()

	// As the run sets it, through the pod's annotation.
	if err := dnsfault.NewControl(pod).Set(context.Background(), "nx", dnsfault.Fault{Names: []string{"wi-authority.idharness.svc"}, NXDomain: true, Until: time.Now().Add(time.Minute)}); err != nil {
		t.Fatal(err)
	}

	type podResult struct {
		rcodes []int
		errs   []error
	}
	done := make(chan podResult, 1)
	go func() {
		// This thread goes into the pod's namespace and never comes
		// back: returning while locked ends the thread.
		runtime.LockOSThread()
		var res podResult
		if err := netns.Set(podNS); err != nil {
			res.errs = append(res.errs, err)
			done <- res
			return
		}
		ask := func() {
			rcode, err := func() (int, error) {
				c, err := net.DialTimeout("udp", net.JoinHostPort("10.77.0.1", dnsPort), time.Second)
				if err != nil {
					return 0, err
				}
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(2 * time.Second))
				if _, err := c.Write(dnsfault.Query(7, "wi-authority.idharness.svc")); err != nil {
					return 0, err
				}
				buf := make([]byte, 512)
				n, err := c.Read(buf)
				if err != nil || n < dnsfault.HeaderLen {
					return 0, errors.Join(err, errors.New("short answer"))
				}
				return int(binary.BigEndian.Uint16(buf[2:]) & 0xF), nil
			}()
			res.rcodes, res.errs = append(res.rcodes, rcode), append(res.errs, err)
		}
		ask()
		// What a pod can send the port it reaches: HTTP over TCP (read
		// as a DNS message length), a state over UDP.
		if c, err := net.DialTimeout("tcp", net.JoinHostPort("10.77.0.1", dnsPort), time.Second); err == nil {
			_, _ = c.Write([]byte("PUT /v1/faults/nx HTTP/1.1\r\nHost: x\r\n\r\n{}"))
			c.Close()
		}
		if c, err := net.Dial("udp", net.JoinHostPort("10.77.0.1", dnsPort)); err == nil {
			_, _ = c.Write([]byte(`{"seq":2,"faults":{}}`))
			c.Close()
		}
		time.Sleep(3 * dnsfault.FaultsPoll)
		ask()
		done <- res
	}()
	res := <-done
	for i, rcode := range res.rcodes {
		if res.errs[i] != nil || rcode != dnsfault.RcodeNXDomain {
			t.Errorf("DNS from the pod, query %d: rcode %d, %v; want NXDOMAIN (the data port is the pod's to use, and the fault stays)", i, rcode, res.errs[i])
		}
	}
	if len(res.rcodes) != 2 {
		t.Errorf("the pod asked %d times, want 2 (%v)", len(res.rcodes), res.errs)
	}
	if st, rm := events(t, pod, dnsfault.EventState), events(t, pod, dnsfault.EventRemoved); len(st) != 1 || len(rm) != 0 {
		t.Errorf("state events %+v, removed %+v: want the one state the file gave, nothing removed", st, rm)
	}
}
