package dockerenv

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakeDocker puts a docker on PATH that runs script, so the tests check
// Run's output and error shape without a Docker engine.
func fakeDocker(t *testing.T, script string) {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "docker"), []byte("#!/bin/sh\n"+script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir)
}

func TestRun(t *testing.T) {
	long := strings.Repeat("x", 200)
	for _, tc := range []struct {
		name, script string
		args         []string
		stdin        string
		want         string
		wantErr      []string
		notInErr     []string
	}{
		{name: "trimmed stdout", script: "echo \"  $1 $2  \"\n", args: []string{"image", "ls"}, want: "image ls"},
		{name: "stdin reaches docker", script: "read l; echo \"$l\"\n", args: []string{"load"}, stdin: "archive\n", want: "archive"},
		{
			name:    "failure names the command and what docker said",
			script:  "echo 'Error: No such container: x' >&2\nexit 1\n",
			args:    []string{"rm", "-f", "x"},
			wantErr: []string{"docker rm -f x", "exit status 1", "No such container: x"},
		},
		{
			name:     "long commands are cut, only the last 20 lines kept",
			script:   "i=0; while [ $i -lt 30 ]; do echo line$i >&2; i=$((i+1)); done\nexit 2\n",
			args:     []string{"run", long},
			wantErr:  []string{"docker run " + strings.Repeat("x", 116) + "…", "line10", "line29"},
			notInErr: []string{"line9\n", strings.Repeat("x", 117)},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fakeDocker(t, tc.script)
			var in io.Reader // a nil interface, not a nil *strings.Reader
			if tc.stdin != "" {
				in = strings.NewReader(tc.stdin)
			}
			got, err := Run(context.Background(), in, tc.args...)
			if len(tc.wantErr) == 0 {
				if err != nil || got != tc.want {
					t.Fatalf("Run = %q, %v; want %q", got, err, tc.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("Run succeeded with %q; want an error", got)
			}
			for _, w := range tc.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			for _, w := range tc.notInErr {
				if strings.Contains(err.Error(), w) {
					t.Errorf("error %q has %q", err, w)
				}
			}
		})
	}
}
