package dnsfault

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/idharness/idharness/fakeimds/duration"
)

func TestQuestion(t *testing.T) {
	good := query(9, "Wi-Authority.ns.svc")
	resp := bytes.Clone(good)
	resp[2] |= 0x80
	two := bytes.Clone(good)
	binary.BigEndian.PutUint16(two[4:], 2)
	pointer := append(bytes.Clone(good[:headerLen]), 0xC0, 0x0C, 0, 1, 0, 1)
	long := query(1, strings.Repeat("a.", 130)+"b")
	for _, tc := range []struct {
		name string
		msg  []byte
		want string // error; empty: the name
	}{
		{"a query", good, ""},
		{"short", good[:5], "shorter than a header"},
		{"a response", resp, "a response"},
		{"two questions", two, "2 questions"},
		{"pointer", pointer, "label of type 0xc0"},
		{"cut name", good[:15], "runs past"},
		{"no type", good[:len(good)-3], "without type and class"},
		{"name too long", long, "too long"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			name, end, err := question(tc.msg)
			if tc.want == "" {
				if err != nil || name != "wi-authority.ns.svc" || end != len(tc.msg) {
					t.Errorf("question = %q, %d, %v; want the lower-case name and the end", name, end, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want %q", err, tc.want)
			}
		})
	}
}

func TestReply(t *testing.T) {
	q := append(query(0xBEEF, "a.example"), 0, 0, 41, 0x10, 0, 0, 0, 0, 0, 0, 0) // and an OPT record
	binary.BigEndian.PutUint16(q[10:], 1)
	a, err := reply(q, rcodeNXDomain)
	if err != nil {
		t.Fatal(err)
	}
	flags := binary.BigEndian.Uint16(a[2:])
	if !bytes.Equal(a[:2], q[:2]) || flags != 0x8183 || binary.BigEndian.Uint16(a[4:]) != 1 ||
		!bytes.Equal(a[6:headerLen], make([]byte, 6)) || !bytes.Equal(a[headerLen:], q[headerLen:len(q)-11]) {
		t.Errorf("reply % x: want ID, QR|RD|RA|NXDOMAIN (0x8183), the question and no records", a)
	}
	if _, err := reply(q[:4], rcodeServFail); err == nil {
		t.Error("reply to a malformed query: no error")
	}
}

func TestFaultValidate(t *testing.T) {
	now := time.Now()
	ok := Fault{Names: []string{"wi-authority.ns.svc"}, NXDomain: true, Until: now.Add(time.Minute)}
	for _, tc := range []struct {
		name string
		edit func(*Fault)
		want string
	}{
		{"ok", func(*Fault) {}, ""},
		{"delay only", func(f *Fault) { f.NXDomain, f.Delay = false, duration.Of(5*time.Second) }, ""},
		{"no names", func(f *Fault) { f.Names = nil }, "names: required"},
		{"upper case", func(f *Fault) { f.Names = []string{"Wi.ns"} }, "lower-case"},
		{"final dot", func(f *Fault) { f.Names = []string{"wi.ns."} }, "empty or over-long label"},
		{"empty", func(f *Fault) { f.Names = []string{""} }, "1 to 253"},
		{"does nothing", func(f *Fault) { f.NXDomain = false }, "does nothing"},
		{"negative delay", func(f *Fault) { f.Delay = duration.Of(-time.Second) }, "delay: want 0 to 1m0s"},
		{"long delay", func(f *Fault) { f.Delay = duration.Of(2 * time.Minute) }, "delay: want 0 to 1m0s"},
		{"past", func(f *Fault) { f.Until = now.Add(-time.Second) }, "until: want a time within 30m0s"},
		{"no end", func(f *Fault) { f.Until = time.Time{} }, "until:"},
		{"too far", func(f *Fault) { f.Until = now.Add(31 * time.Minute) }, "until:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := ok
			f.Names = append([]string(nil), ok.Names...)
			tc.edit(&f)
			err := f.Validate(now)
			if (err == nil) != (tc.want == "") || err != nil && !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Validate = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestFaultMatches(t *testing.T) {
	f := Fault{Names: []string{"wi-authority.ns.svc"}}
	for name, want := range map[string]bool{
		"wi-authority.ns.svc":                       true,
		"wi-authority.ns.svc.run.svc.cluster.local": true,
		"wi-authority.ns.svc.cluster.local":         true,
		"wi-authority.ns.svcx":                      false,
		"x.wi-authority.ns.svc":                     false,
		"vault.ns.svc":                              false,
	} {
		if got := f.matches(name); got != want {
			t.Errorf("matches(%q) = %v, want %v", name, got, want)
		}
	}
}

func TestReadResolv(t *testing.T) {
	p := filepath.Join(t.TempDir(), "resolv.conf")
	if err := os.WriteFile(p, []byte("# kubelet\nnameserver 10.96.0.10\nnameserver 10.96.0.11\n; x\nsearch a.svc.cluster.local svc.cluster.local\noptions ndots:5 edns0\noptions timeout:2\nnameserver\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r, err := ReadResolv(p)
	if err != nil || strings.Join(r.Nameservers, ",") != "10.96.0.10,10.96.0.11" || strings.Join(r.Search, ",") != "a.svc.cluster.local,svc.cluster.local" ||
		strings.Join(r.Options, ",") != "ndots:5,edns0,timeout:2" {
		t.Errorf("ReadResolv = %+v, %v", r, err)
	}
	if _, err := ReadResolv(filepath.Join(t.TempDir(), "none")); err == nil || !strings.Contains(err.Error(), "read the resolver configuration") {
		t.Errorf("missing file: %v", err)
	}
	if _, err := New(Config{FaultsFile: "f", ResolvConf: p, Upstream: "10.96.0.10"}); err == nil || !strings.Contains(err.Error(), "HOST:PORT") {
		t.Errorf("upstream without a port: %v", err)
	}
	s, err := New(Config{FaultsFile: "f", ResolvConf: p})
	if err != nil || s.upstream != "10.96.0.10:53" {
		t.Errorf("default upstream: %v, %v; want the first nameserver, port 53", s, err)
	}
}

// query builds a DNS query for an A record of name.
func query(id uint16, name string) []byte {
	q := binary.BigEndian.AppendUint16(nil, id)
	q = append(q, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0) // RD, one question
	for l := range strings.SplitSeq(name, ".") {
		q = append(append(q, byte(len(l))), l...)
	}
	return append(q, 0, 0, 1, 0, 1)
}
