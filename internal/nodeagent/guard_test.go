package nodeagent

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/nftables/expr"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/idharness/idharness/internal/netnstest"
)

func TestGuardExprs(t *testing.T) {
	for _, tc := range []struct {
		name    string
		g       Guard
		wantErr bool
	}{
		{"IPv4", Guard{MetadataIP: net.ParseIP("169.254.169.254"), MetadataPort: 80}, false},
		{"IPv6", Guard{MetadataIP: net.ParseIP("fd00::254"), MetadataPort: 80}, true},
		{"no address", Guard{MetadataPort: 80}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			exprs, err := tc.g.Exprs()
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, want error %v", err, tc.wantErr)
			}
			if err != nil {
				return
			}
			var cmps [][]byte
			var reject *expr.Reject
			for _, e := range exprs {
				switch e := e.(type) {
				case *expr.Cmp:
					cmps = append(cmps, e.Data)
				case *expr.Reject:
					reject = e
				case *expr.NAT:
					t.Fatal("the guard must refuse, not redirect")
				}
			}
			want := [][]byte{[]byte("lo\x00"), {169, 254, 169, 254}, {6}, {0, 80}}
			if len(cmps) != len(want) {
				t.Fatalf("%d matches, want %d", len(cmps), len(want))
			}
			for i, w := range want {
				if !bytes.HasPrefix(cmps[i], w) {
					t.Errorf("match %d: %v, want %v", i, cmps[i], w)
				}
			}
			if reject == nil || reject.Type != unix.NFT_REJECT_TCP_RST {
				t.Errorf("reject = %+v, want a TCP reset", reject)
			}
		})
	}
}

func TestBootHook(t *testing.T) {
	root := t.TempDir()
	exe := filepath.Join(t.TempDir(), "agent")
	if err := os.WriteFile(exe, []byte("agent v1"), 0o700); err != nil {
		t.Fatal(err)
	}
	h := BootHook{Root: root}
	unit := filepath.Join(root, HookUnitDir, HookUnit)
	link := filepath.Join(root, HookUnitDir, "multi-user.target.wants", HookUnit)
	bin := filepath.Join(root, HookBinDir, "nodeagent")

	if err := h.Remove(); err != nil {
		t.Fatalf("Remove with nothing installed: %v", err)
	}
	for _, version := range []string{"agent v1", "agent v2"} {
		if err := os.WriteFile(exe, []byte(version), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := h.Install(exe); err != nil {
			t.Fatalf("Install (%s): %v", version, err)
		}
		if b, err := os.ReadFile(bin); err != nil || string(b) != version {
			t.Errorf("binary on the node = %q, %v; want %q", b, err, version)
		}
		if fi, err := os.Stat(bin); err != nil || fi.Mode().Perm() != 0o755 {
			t.Errorf("binary mode = %v, %v; want 0755", fi.Mode(), err)
		}
	}
	b, err := os.ReadFile(unit)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"ExecStart=" + HookBinDir + "/nodeagent guard\n",
		"Before=containerd.service kubelet.service\n",
		"DefaultDependencies=no\n",
		"WantedBy=multi-user.target\n",
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("unit lacks %q:\n%s", want, b)
		}
	}
	if target, err := os.Readlink(link); err != nil || target != HookUnitDir+"/"+HookUnit {
		t.Errorf("enabled by %q, %v; want a link to the node path %s/%s", target, err, HookUnitDir, HookUnit)
	}
	if err := h.Remove(); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{unit, link, bin} {
		if _, err := os.Lstat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s still there after Remove (%v)", p, err)
		}
	}

	// The node's directories not mounted (a file in the way): the error
	// says which mount to check.
	bad := t.TempDir()
	if err := os.WriteFile(filepath.Join(bad, "var"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := (BootHook{Root: bad}).Install(exe); err == nil || !strings.Contains(err.Error(), filepath.Join(bad, HookBinDir)+" mounted from the node") {
		t.Errorf("Install without the node's directories: %v; want an error naming the mount", err)
	}
}

// TestGuardThenRedirect plays a node's boot with real packets: a node
// namespace holding the metadata address, and a pod namespace behind a
// veth. Before any rule the pod reaches the metadata endpoint (the leak
// of IDH-CHAOS-0017); the guard refuses it at once; the agent's Install
// replaces the guard, and the pod then reaches the agent.
func TestGuardThenRedirect(t *testing.T) {
	nodeNS, lo := netnstest.Enter(t)
	mustAddr := func(l netlink.Link, cidr string) {
		t.Helper()
		a, err := netlink.ParseAddr(cidr)
		if err != nil {
			t.Fatal(err)
		}
		if err := netlink.AddrAdd(l, a); err != nil {
			t.Fatal(err)
		}
	}
	mustAddr(lo, "169.254.169.254/32")
	podNS, err := netns.New() // switches this thread into it
	if err != nil {
		t.Fatal(err)
	}
	defer podNS.Close()
	if err := netns.Set(nodeNS); err != nil {
		t.Fatal(err)
	}
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "node0"}, PeerName: "pod0"}
	if err := netlink.LinkAdd(veth); err != nil {
		t.Skipf("cannot create a veth here: %v", err)
	}
	peer, err := netlink.LinkByName("pod0")
	if err != nil {
		t.Fatal(err)
	}
	if err := netlink.LinkSetNsFd(peer, int(podNS)); err != nil {
		t.Fatal(err)
	}
	mustAddr(veth, "10.99.0.1/24")
	if err := netlink.LinkSetUp(veth); err != nil {
		t.Fatal(err)
	}
	serve := func(addr, answer string) {
		t.Helper()
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				_, _ = c.Write([]byte(answer))
				c.Close()
			}
		}()
	}
	serve("169.254.169.254:80", "metadata endpoint")
	serve("10.99.0.1:2579", "agent")

	// The pod's side: its address and a route to the node.
	if err := netns.Set(podNS); err != nil {
		t.Fatal(err)
	}
	podLo, _ := netlink.LinkByName("lo")
	_ = netlink.LinkSetUp(podLo)
	pod, err := netlink.LinkByName("pod0")
	if err != nil {
		t.Fatal(err)
	}
	mustAddr(pod, "10.99.0.2/24")
	if err := netlink.LinkSetUp(pod); err != nil {
		t.Fatal(err)
	}
	if err := netlink.RouteAdd(&netlink.Route{LinkIndex: pod.Attrs().Index, Dst: &net.IPNet{IP: net.ParseIP("169.254.169.254"), Mask: net.CIDRMask(32, 32)}, Gw: net.ParseIP("10.99.0.1")}); err != nil {
		t.Fatal(err)
	}
	// ask calls the metadata endpoint from the pod's namespace.
	ask := func() (string, error) {
		t.Helper()
		if err := netns.Set(podNS); err != nil {
			t.Fatal(err)
		}
		defer func() { _ = netns.Set(nodeNS) }()
		c, err := net.DialTimeout("tcp", "169.254.169.254:80", 3*time.Second)
		if err != nil {
			return "", err
		}
		defer c.Close()
		b, err := io.ReadAll(c)
		return string(b), err
	}
	metadata := net.ParseIP("169.254.169.254")
	if got, err := ask(); err != nil || got != "metadata endpoint" {
		t.Fatalf("before any rule: %q, %v; want the metadata endpoint (the test's network is wrong)", got, err)
	}
	if err := (Guard{MetadataIP: metadata, MetadataPort: 80}).Install(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if got, err := ask(); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("with the guard: %q, %v; want connection refused", got, err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("refused after %s: the guard must reset, not drop", d)
	}
	rd := Redirect{MetadataIP: metadata, MetadataPort: 80, AgentIP: net.ParseIP("10.99.0.1"), AgentPort: 2579}
	if err := rd.Install(); err != nil {
		t.Fatal(err)
	}
	if got, err := ask(); err != nil || got != "agent" {
		t.Fatalf("after the agent's Install: %q, %v; want the agent", got, err)
	}
	if err := rd.Remove(); err != nil {
		t.Fatal(err)
	}
	if got, err := ask(); err != nil || got != "metadata endpoint" {
		t.Fatalf("after Remove: %q, %v; want the metadata endpoint (no rule left)", got, err)
	}
}
