package cluster

import (
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
)

func TestParseMirror(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Mirror
		err  string
	}{
		{in: "localhost:5001=http://idh-registry:5000", want: Mirror{"localhost:5001", "http://idh-registry:5000"}},
		{in: "registry.example.com=https://mirror.example.com/", want: Mirror{"registry.example.com", "https://mirror.example.com"}},
		{in: "localhost:5001", err: "not HOST=ENDPOINT"},
		{in: "=http://idh-registry:5000", err: "not HOST=ENDPOINT"},
		{in: "http://localhost:5001=http://idh-registry:5000", err: "without a scheme"},
		{in: "localhost:5001=idh-registry:5000", err: "ENDPOINT is a URL"},
		{in: "localhost:5001=ftp://idh-registry:5000", err: "ENDPOINT is a URL"},
		{in: "localhost:5001=http://idh-registry:5000/v2", err: "ENDPOINT is a URL"},
	} {
		got, err := ParseMirror(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) || !strings.Contains(err.Error(), "idharness registry start") {
				t.Errorf("ParseMirror(%q) = %v, %v; want an error with %q that says what to give", tc.in, got, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseMirror(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
}

// The kind config asks containerd for per-registry hosts files only when a
// mirror is wanted, and the files say to pull from the endpoint alone.
func TestMirrorConfig(t *testing.T) {
	o := defaults()
	if cfg := KindConfig(o, "img:1"); len(cfg.ContainerdConfigPatches) != 0 {
		t.Errorf("no mirror, patches %q", cfg.ContainerdConfigPatches)
	}
	WithRegistryMirror("localhost:5001", "http://idh-registry:5000")(&o)
	cfg := KindConfig(o, "img:1")
	if len(cfg.ContainerdConfigPatches) != 1 {
		t.Fatalf("patches %q", cfg.ContainerdConfigPatches)
	}
	var patch map[string]any
	if err := toml.Unmarshal([]byte(cfg.ContainerdConfigPatches[0]), &patch); err != nil {
		t.Fatalf("patch is not TOML (kind would fail to merge it): %v\n%s", err, cfg.ContainerdConfigPatches[0])
	}
	cri := patch["plugins"].(map[string]any)["io.containerd.grpc.v1.cri"].(map[string]any)
	if got := cri["registry"].(map[string]any)["config_path"]; got != certsDir {
		t.Errorf("config_path %v, want %s", got, certsDir)
	}

	m := o.Mirrors[0]
	if m.hostsPath() != "/etc/containerd/certs.d/localhost:5001/hosts.toml" {
		t.Errorf("hosts path %s", m.hostsPath())
	}
	var hosts struct {
		Server string
		Host   map[string]struct{ Capabilities []string }
	}
	if err := toml.Unmarshal([]byte(m.hostsTOML()), &hosts); err != nil {
		t.Fatalf("hosts.toml: %v\n%s", err, m.hostsTOML())
	}
	h, ok := hosts.Host["http://idh-registry:5000"]
	if hosts.Server != "http://idh-registry:5000" || !ok || strings.Join(h.Capabilities, ",") != "pull,resolve" || len(hosts.Host) != 1 {
		t.Errorf("hosts.toml %+v:\n%s", hosts, m.hostsTOML())
	}
}
