package main

import (
	"bytes"
	"strings"
	"testing"
)

// runCLI runs the idharness command with args and returns its output and error.
func runCLI(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := newRootCommand()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(args)
	err := cmd.Execute()
	return out.String(), err
}

func TestClusterCommandsRejectBadInput(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"bad name", []string{"cluster", "create", "--name", "Bad_Name", "--cache-dir", dir}, "lower-case letters"},
		{"negative workers", []string{"cluster", "create", "--workers", "-1", "--cache-dir", dir}, "workers -1"},
		{"bad version", []string{"cluster", "create", "--kubernetes-version", "latest", "--cache-dir", dir}, "v1.34.4"},
		{"image build bad version", []string{"cluster", "image", "build", "--etcd-version", "v3.6.5", "--cache-dir", dir}, "without the leading v"},
		{"programs without program", []string{"cluster", "image", "programs"}, "no --program"},
		{"programs malformed", []string{"cluster", "image", "programs", "--program", "./cmd/fakeimds"}, "PACKAGE=IMAGE"},
		{"extra argument", []string{"cluster", "delete", "extra"}, "unknown command"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := runCLI(t, tt.args...)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want %q", err, tt.wantErr)
			}
		})
	}
}

func TestClusterHelpAndVersion(t *testing.T) {
	out, err := runCLI(t, "cluster", "create", "--help")
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"--node-image", "--workers", "--keep-on-failure", "--existing-kubeconfig", "offline"} {
		if !strings.Contains(out, w) {
			t.Errorf("create help lacks %q", w)
		}
	}
	out, err = runCLI(t, "version")
	if err != nil || !strings.HasPrefix(out, "idharness ") || !strings.Contains(out, "kind library v") {
		t.Fatalf("version: %q, %v", out, err)
	}
}
