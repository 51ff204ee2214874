package main

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/idharness/idharness/fakeimds/config"
)

func TestTrustIssuer(t *testing.T) {
	dir := t.TempDir()
	in, out := filepath.Join(dir, "in.yaml"), filepath.Join(dir, "out.yaml")
	is := config.Issuer{URL: "https://kubernetes.default.svc.cluster.local", JWKSFile: "/var/run/issuer/jwks.json"}
	for _, tt := range []struct {
		name, config, wantErr string
	}{
		{"issuer replaces the configured ones", "tenantId: 72f988bf-86f1-41af-91ab-2d7cd011db47\nfaces:\n  authority:\n    issuers: [{url: https://old.example}]\n", ""},
		{"invalid configuration is refused with the field", "listen: {imds: ':80', control: ':80'}\n", "listen"},
		{"unknown field is refused", "nope: 1\n", "nope"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if err := os.WriteFile(in, []byte(tt.config), 0o644); err != nil {
				t.Fatal(err)
			}
			err := trustIssuer(in, out, is)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err %v, want one naming %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			c := config.Default()
			if err := config.LoadFile(&c, out); err != nil {
				t.Fatal(err)
			}
			if got := c.Faces.Authority.Issuers; len(got) != 1 || got[0] != is {
				t.Errorf("issuers = %+v, want only %+v", got, is)
			}
		})
	}
}

func TestRunUsage(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	for _, tt := range []struct {
		args []string
		want string
	}{
		{nil, "usage"},
		{[]string{"bogus"}, `unknown command "bogus"`},
		{[]string{"serve", "--authority-host=https://a/"}, "--tenant-id"},
		{[]string{"issuer-keys"}, "set --out"},
		{[]string{"issuer-keys", "--out=/x", "--config-in=/y"}, "--config-out"},
	} {
		err := run(context.Background(), tt.args, log)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("run %v: err %v, want %q", tt.args, err, tt.want)
		}
	}
}
