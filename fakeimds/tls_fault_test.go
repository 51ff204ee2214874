package fakeimds

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/idharness/idharness/fakeimds/chaos"
	"github.com/idharness/idharness/fakeimds/config"
)

// tlsRule decodes a rule written as the control API takes it.
func tlsRule(t *testing.T, js string) chaos.Rule {
	t.Helper()
	var r chaos.Rule
	if err := json.Unmarshal([]byte(js), &r); err != nil {
		t.Fatalf("rule %s: %v", js, err)
	}
	return r
}

// TestTLSCertificateFault checks that a tls-certificate rule makes the
// authority present an untrusted or an expired certificate to the
// clients it matches, closes the connections clients hold when it
// starts, and that the trusted certificate is back once it is removed.
func TestTLSCertificateFault(t *testing.T) {
	dir := t.TempDir()
	s := newServer(t, func(c *config.Config) {
		c.Listen.AuthorityTLS = "127.0.0.1:0"
		c.Faces.Authority.TLSDir = dir
		c.Faces.Authority.TLSHosts = []string{"authority.test"}
	})
	a := running(t, s)
	pool := x509.NewCertPool()
	caPEM, err := os.ReadFile(filepath.Join(dir, CAFileName))
	if err != nil || !pool.AppendCertsFromPEM(caPEM) {
		t.Fatalf("read CA: %v", err)
	}
	dial := func() error {
		conn, err := tls.Dial("tcp", a.AuthorityTLS, &tls.Config{RootCAs: pool, ServerName: "authority.test"})
		if err == nil {
			_ = conn.Close()
		}
		return err
	}
	if err := dial(); err != nil {
		t.Fatalf("before any rule: %v", err)
	}
	// A pooled connection, made before the rule, that a client would reuse.
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "authority.test"}}}
	get := func() error {
		resp, err := hc.Get("https://" + a.AuthorityTLS + "/common/discovery/keys")
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		return err
	}
	if err := get(); err != nil {
		t.Fatalf("pooled connection: %v", err)
	}
	for _, c := range []struct {
		rule, want string
	}{
		{`{"name":"tls-untrusted","match":{"faces":["authority"]},"action":{"type":"tls-certificate","certificate":"untrusted"}}`, "unknown authority"},
		{`{"name":"tls-expired","match":{"faces":["authority"],"sources":["127.0.0.1"]},"action":{"type":"tls-certificate","certificate":"expired"}}`, "expired"},
	} {
		r := tlsRule(t, c.rule)
		if err := s.Chaos().Add(r); err != nil {
			t.Fatal(err)
		}
		// The listener closes pooled connections as the rule starts.
		deadline := time.Now().Add(5 * time.Second)
		var err error
		for err = get(); err == nil && time.Now().Before(deadline); err = get() {
			time.Sleep(20 * time.Millisecond)
		}
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: request on a pooled connection: %v, want a TLS error with %q", r.Name, err, c.want)
		}
		if err := dial(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: handshake: %v, want an error with %q", r.Name, err, c.want)
		}
		s.Chaos().Remove(r.Name)
		if err := dial(); err != nil {
			t.Errorf("after %s was removed: %v", r.Name, err)
		}
	}
	// A rule for other sources leaves this client alone.
	if err := s.Chaos().Add(tlsRule(t, `{"name":"tls-other","match":{"faces":["authority"],"sources":["10.9.9.9"]},"action":{"type":"tls-certificate","certificate":"untrusted"}}`)); err != nil {
		t.Fatal(err)
	}
	if err := dial(); err != nil {
		t.Errorf("a rule for 10.9.9.9 faulted 127.0.0.1: %v", err)
	}
	found := false
	for _, e := range s.Journal().Since(0) {
		if len(e.Faults) == 1 && e.Faults[0] == "tls-expired" && strings.Contains(e.Error, "expired certificate") {
			found = true
		}
	}
	if !found {
		t.Error("no journal entry for the expired certificate's handshakes")
	}
}

// TestTLSCertificateExpiredNeedsCA checks that with certificate files
// and no CA key the expired certificate is refused with what to set, and
// the handshake fails rather than presenting something else.
func TestTLSCertificateExpiredNeedsCA(t *testing.T) {
	caPEM, caKeyPEM, certPEM, keyPEM, err := NewServingCertWithCAPEM([]string{"files.test"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	certFile, keyFile := write("tls.crt", certPEM), write("tls.key", keyPEM)
	caFile, caKeyFile := write("ca.crt", caPEM), write("ca.key", caKeyPEM)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	for _, c := range []struct {
		name   string
		caFile string
		want   string
	}{
		{"without the CA key", "", "internal error"},
		{"with the CA key", caFile, "expired"},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := newServer(t, func(cfg *config.Config) {
				cfg.Listen.AuthorityTLS = "127.0.0.1:0"
				cfg.Faces.Authority.TLSCertFile, cfg.Faces.Authority.TLSKeyFile = certFile, keyFile
				if c.caFile != "" {
					cfg.Faces.Authority.TLSCAFile, cfg.Faces.Authority.TLSCAKeyFile = c.caFile, caKeyFile
				}
			})
			a := running(t, s)
			if err := s.Chaos().Add(tlsRule(t, `{"name":"tls-expired","match":{"faces":["authority"]},"action":{"type":"tls-certificate","certificate":"expired"}}`)); err != nil {
				t.Fatal(err)
			}
			_, err := tls.Dial("tcp", a.AuthorityTLS, &tls.Config{RootCAs: pool, ServerName: "files.test"})
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("handshake: %v, want an error with %q", err, c.want)
			}
		})
	}
}
