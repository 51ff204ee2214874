package config

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func writeFile(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "fakeimds.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

const good = `tenantId: 11111111-2222-4333-8444-555555555555
host:
  name: node-1
  subscriptionId: 00000000-0000-0000-0000-00000000abcd
  resourceGroup: rg-1
tokens:
  lifetime: 90s
userAssigned:
  - name: web
    clientId: 11111111-1111-4111-8111-111111111111
    objectId: 22222222-2222-4222-8222-222222222222
    tokenLifetime: 10m
    federatedCredentials:
      - issuer: https://oidc.example
        subject: system:serviceaccount:default:web
`

func TestLoadFile(t *testing.T) {
	c := Default()
	if err := LoadFile(&c, writeFile(t, good)); err != nil {
		t.Fatal(err)
	}
	if c.Tokens.Lifetime.Duration != 90*time.Second || c.Host.Name != "node-1" || c.Listen.IMDS != ":80" {
		t.Fatalf("loaded %+v", c)
	}
	sys, users := c.Identities()
	if sys == nil || sys.ResourceID != "/subscriptions/00000000-0000-0000-0000-00000000abcd/resourceGroups/rg-1/providers/Microsoft.Compute/virtualMachines/node-1" {
		t.Errorf("system identity %+v", sys)
	}
	if len(users) != 1 || users[0].TokenLifetime != 10*time.Minute || len(users[0].Federated) != 1 ||
		users[0].ResourceID != "/subscriptions/00000000-0000-0000-0000-00000000abcd/resourceGroups/rg-1/providers/Microsoft.ManagedIdentity/userAssignedIdentities/web" {
		t.Errorf("user identities %+v", users)
	}
}

func TestLoadFileErrors(t *testing.T) {
	cases := []struct {
		name string
		body string
		want string // substring of the error, which starts with the file name
	}{
		{"unknown field", strings.Replace(good, "  lifetime: 90s", "  lifetim: 90s", 1), ":7: lifetim: unknown field"},
		{"bad duration", strings.Replace(good, "90s", "ninety", 1), "want a duration"},
		{"bad client id", strings.Replace(good, "clientId: 11111111-1111-4111-8111-111111111111", "clientId: web", 1), ":10: userAssigned[0].clientId: want a GUID"},
		{"bad issuer", strings.Replace(good, "https://oidc.example", "oidc.example", 1), ":14: userAssigned[0].federatedCredentials[0].issuer"},
		{"duplicate name", good + "  - name: web\n    clientId: 33333333-3333-4333-8333-333333333333\n    objectId: 44444444-4444-4444-8444-444444444444\n", ":16: userAssigned[1].name: \"web\" is used twice"},
		{"wrong type", strings.Replace(good, "  name: node-1", "  name: [a, b]", 1), "host.name"},
		{"yaml syntax", "tenantId: [", "fakeimds.yaml"},
		{"empty", "", "file is empty"},
		{"zero lifetime", strings.Replace(good, "90s", "0s", 1), ":7: tokens.lifetime: must be positive"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := Default()
			p := writeFile(t, tc.body)
			err := LoadFile(&c, p)
			if err == nil {
				t.Fatal("loaded a bad file")
			}
			if !strings.HasPrefix(err.Error(), p) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q, want it to start with the file and contain %q", err, tc.want)
			}
			// Other modules read the file and line from the public type.
			var fe *FileError
			if !errors.As(err, &fe) || fe.File != p {
				t.Fatalf("error %T %v, want a *FileError for %s", err, err, p)
			}
		})
	}
	if err := LoadFile(&Config{}, filepath.Join(t.TempDir(), "missing.yaml")); err == nil || !strings.Contains(err.Error(), "missing.yaml") {
		t.Errorf("missing file: %v", err)
	}
}

func TestPrecedenceFileEnvFlags(t *testing.T) {
	c := Default()
	if err := LoadFile(&c, writeFile(t, good)); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"FAKEIMDS_TOKEN_LIFETIME": "2m", "FAKEIMDS_IMDS_ADDR": "127.0.0.1:8080", "FAKEIMDS_ARC": "true"}
	if err := ApplyEnv(&c, func(k string) (string, bool) { v, ok := env[k]; return v, ok }); err != nil {
		t.Fatal(err)
	}
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	BindFlags(fs)
	if err := fs.Parse([]string{"--token-lifetime=3m"}); err != nil {
		t.Fatal(err)
	}
	if err := ApplyFlags(&c, fs); err != nil {
		t.Fatal(err)
	}
	if c.Tokens.Lifetime.Duration != 3*time.Minute || c.Listen.IMDS != "127.0.0.1:8080" || !c.Faces.Arc.On() {
		t.Fatalf("flags > env > file broken: lifetime %v imds %q arc %v", c.Tokens.Lifetime, c.Listen.IMDS, c.Faces.Arc.On())
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestEnvAndFlagErrors(t *testing.T) {
	c := Default()
	err := ApplyEnv(&c, func(k string) (string, bool) { return "maybe", k == "FAKEIMDS_TOKEN_CACHE" })
	if err == nil || err.Error() != `env: FAKEIMDS_TOKEN_CACHE: want true or false, got "maybe"` {
		t.Errorf("env error %v", err)
	}
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	BindFlags(fs)
	_ = fs.Parse([]string{"--token-refresh-before=soon"})
	if err := ApplyFlags(&c, fs); err == nil || !strings.HasPrefix(err.Error(), "flags: --token-refresh-before:") {
		t.Errorf("flag error %v", err)
	}
}

func TestValidate(t *testing.T) {
	cases := []struct {
		name  string
		mut   func(*Config)
		field string
	}{
		{"default is valid", func(*Config) {}, ""},
		{"tenant", func(c *Config) { c.TenantID = "contoso" }, "tenantId"},
		{"same imds and control", func(c *Config) { c.Listen.Control = c.Listen.IMDS }, "listen.control"},
		{"bad address", func(c *Config) { c.Listen.IMDS = "80" }, "listen.imds"},
		{"control on every address needs a token", func(c *Config) { c.Listen.Control = ":8079" }, "listen.controlTokenFile"},
		{"control on a node address needs a token", func(c *Config) { c.Listen.Control = "10.0.0.4:8079" }, "listen.controlTokenFile"},
		{"control on every address with a token", func(c *Config) { c.Listen.Control = ":8079"; c.Listen.ControlTokenFile = "/t" }, ""},
		{"control on localhost needs no token", func(c *Config) { c.Listen.Control = "localhost:8079" }, ""},
		{"services same as imds", func(c *Config) { c.Listen.Services = c.Listen.IMDS }, "listen.services"},
		{"system resource id", func(c *Config) { c.SystemAssigned.ResourceID = "/subscriptions/x" }, "systemAssigned.resourceId"},
		{"app service path", func(c *Config) { c.Faces.AppService.Path = "/metadata/x" }, "faces.appService.path"},
		{"app service secret", func(c *Config) { c.Faces.AppService.Secret = "" }, "faces.appService.secret"},
		{"app service off needs no secret", func(c *Config) { off := false; c.Faces.AppService.Enabled = &off; c.Faces.AppService.Secret = "" }, ""},
		{"log level", func(c *Config) { c.Log.Level = "loud" }, "log.level"},
		{"tls CA without its key", func(c *Config) {
			c.Faces.Authority.TLSCertFile, c.Faces.Authority.TLSKeyFile, c.Faces.Authority.TLSCAFile = "/c", "/k", "/ca"
		}, "faces.authority.tlsCaFile"},
		{"tls CA without a certificate file", func(c *Config) { c.Faces.Authority.TLSCAFile, c.Faces.Authority.TLSCAKeyFile = "/ca", "/cak" }, "faces.authority.tlsCaFile"},
		{"tls CA with a certificate file", func(c *Config) {
			c.Faces.Authority.TLSCertFile, c.Faces.Authority.TLSKeyFile = "/c", "/k"
			c.Faces.Authority.TLSCAFile, c.Faces.Authority.TLSCAKeyFile = "/ca", "/cak"
		}, ""},
		{"shared object id", func(c *Config) {
			c.UserAssigned = []Identity{{Name: "x", ClientID: "11111111-1111-4111-8111-111111111111", ObjectID: c.SystemAssigned.ObjectID}}
		}, "userAssigned[0]"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := Default()
			tc.mut(&c)
			err := c.Validate()
			if tc.field == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			fe, ok := err.(*FieldError)
			if !ok || fe.Field != tc.field {
				t.Fatalf("error %v, want one on %s", err, tc.field)
			}
		})
	}
}

func FuzzLoadFile(f *testing.F) {
	f.Add([]byte(good))
	f.Add([]byte("tenantId: x\nhost: {name: 1}\n"))
	f.Add([]byte("userAssigned: [{}, {}]\n"))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		p := filepath.Join(dir, "f.yaml")
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		c := Default()
		if err := LoadFile(&c, p); err == nil {
			// Whatever loads must be valid and convertible.
			if err := c.Validate(); err != nil {
				t.Fatalf("loaded config fails validation: %v", err)
			}
			c.Identities()
		}
	})
}
