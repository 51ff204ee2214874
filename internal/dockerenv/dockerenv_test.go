package dockerenv

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

func TestParseCapBnd(t *testing.T) {
	tests := []struct {
		name    string
		status  string
		want    uint64
		wantErr bool
	}{
		{"full set", "Name:\tbash\nCapPrm:\t0000000000000000\nCapBnd:\t000001ffffffffff\n", 0x1ffffffffff, false},
		{"no SYS_RESOURCE", "CapBnd:\t000001fffeffffff\nCapAmb:\t0\n", 0x1fffeffffff, false},
		{"missing line", "Name:\tbash\n", 0, true},
		{"bad hex", "CapBnd:\tzz\n", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseCapBnd(tt.status)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Fatalf("got %x, want %x", got, tt.want)
			}
		})
	}
}

func TestMissingCaps(t *testing.T) {
	tests := []struct {
		name    string
		bnd     uint64
		lastCap int
		want    []string
	}{
		{"complete", 0x1ffffffffff, 40, nil},
		{"this machine", 0x1fffeffffff, 40, []string{"CAP_SYS_RESOURCE"}},
		{"older kernel ignores unknown bits", 0xffffffffff, 39, nil},
		{"two missing", 0x1fffeffdfff, 40, []string{"CAP_NET_RAW", "CAP_SYS_RESOURCE"}},
		{"unnamed bit", 0x1ffffffffff, 42, []string{"CAP_41", "CAP_42"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := MissingCaps(tt.bnd, tt.lastCap); !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestFilterBundleCaps(t *testing.T) {
	config := `{"ociVersion":"1.0.2","process":{"user":{"uid":0,"gid":0},"args":["/sbin/init"],` +
		`"capabilities":{"bounding":["CAP_CHOWN","CAP_SYS_RESOURCE","CAP_SYS_ADMIN"],"effective":["CAP_SYS_RESOURCE"],"permitted":["CAP_CHOWN"]},` +
		`"oomScoreAdj":-999},"linux":{"resources":{"memory":{"limit":9223372036854771712}}}}`
	out, err := FilterBundleCaps([]byte(config), []string{"CAP_SYS_RESOURCE"})
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Process struct {
			Args         []string            `json:"args"`
			Capabilities map[string][]string `json:"capabilities"`
			OOMScoreAdj  int                 `json:"oomScoreAdj"`
		} `json:"process"`
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{
		"bounding":  {"CAP_CHOWN", "CAP_SYS_ADMIN"},
		"effective": {},
		"permitted": {"CAP_CHOWN"},
	}
	if !reflect.DeepEqual(got.Process.Capabilities, want) {
		t.Fatalf("capabilities = %v, want %v", got.Process.Capabilities, want)
	}
	if got.Process.OOMScoreAdj != -999 || got.Process.Args[0] != "/sbin/init" {
		t.Fatalf("other members changed: %s", out)
	}
	// Large integers elsewhere must survive byte for byte.
	if !strings.Contains(string(out), "9223372036854771712") {
		t.Fatalf("memory limit lost precision: %s", out)
	}
	// Nothing to drop: the input comes back unchanged.
	same, err := FilterBundleCaps([]byte(config), []string{"CAP_BPF"})
	if err != nil || string(same) != config {
		t.Fatalf("unchanged config rewritten: %s, %v", same, err)
	}
}

func TestFilterProcessCaps(t *testing.T) {
	proc := `{"args":["sh"],"capabilities":{"bounding":["CAP_SYS_RESOURCE","CAP_KILL"],"ambient":["CAP_SYS_RESOURCE"]}}`
	out, err := FilterProcessCaps([]byte(proc), []string{"CAP_SYS_RESOURCE"})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), "CAP_SYS_RESOURCE") || !strings.Contains(string(out), "CAP_KILL") {
		t.Fatalf("got %s", out)
	}
	if _, err := FilterProcessCaps([]byte(`{"capabilities":{"bounding":"x"}}`), []string{"CAP_KILL"}); err == nil {
		t.Fatal("want an error for a malformed capability set")
	}
	if _, err := FilterProcessCaps([]byte(`not json`), nil); err == nil {
		t.Fatal("want an error for malformed JSON")
	}
}

func TestRuncSpecFiles(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want map[string]bool
	}{
		{"create", []string{"--root", "/run/runc", "create", "--bundle", "/b", "--pid-file", "p", "id"}, map[string]bool{"/b/config.json": true}},
		{"create short", []string{"create", "-b", "/b", "id"}, map[string]bool{"/b/config.json": true}},
		{"run equals", []string{"run", "--bundle=/x/y", "id"}, map[string]bool{"/x/y/config.json": true}},
		{"exec", []string{"exec", "--process", "/tmp/p.json", "--detach", "id"}, map[string]bool{"/tmp/p.json": false}},
		{"exec equals", []string{"exec", "--process=/tmp/q.json", "id"}, map[string]bool{"/tmp/q.json": false}},
		{"state", []string{"state", "id"}, map[string]bool{}},
		{"dangling flag", []string{"create", "--bundle"}, map[string]bool{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := RuncSpecFiles(tt.args); !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
		})
	}
}
