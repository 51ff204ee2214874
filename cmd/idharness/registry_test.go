package main

import (
	"strings"
	"testing"
	"time"
)

// A wrong --image-registry or --registry-mirror fails at once, before the
// cluster phase (whose error about the bad cluster name would come first
// otherwise), saying what to give.
func TestRegistryFlagsCheckedUpFront(t *testing.T) {
	dir := t.TempDir()
	common := map[string][]string{
		"run":     {"--cluster", "Bad_Name", "--cache-dir", dir, "--report-dir", dir},
		"cluster": {"--name", "Bad_Name", "--cache-dir", dir},
	}
	for _, tc := range []struct {
		name string
		args []string
		want []string
	}{
		{"registry without a host", []string{"run", "--image-registry", "idharness/images"}, []string{`"idharness/images"`, "not a registry host", "localhost:5001/idharness"}},
		{"registry with upper case", []string{"run", "--image-registry", "localhost:5001/IDH"}, []string{`"localhost:5001/IDH"`, "localhost:5001/idharness"}},
		{"registry with a digest", []string{"run", "--image-registry", "localhost:5001/idh@sha256:00"}, []string{"a digest is not a repository"}},
		{"run mirror without endpoint", []string{"run", "--registry-mirror", "localhost:5001"}, []string{"not HOST=ENDPOINT", "idharness registry start"}},
		{"cluster mirror endpoint without scheme", []string{"cluster", "create", "--registry-mirror", "localhost:5001=idh-registry:5000"}, []string{"ENDPOINT is a URL"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			_, err := runCLI(t, append(tc.args, common[tc.args[0]]...)...)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("took %v", d)
			}
		})
	}
}
