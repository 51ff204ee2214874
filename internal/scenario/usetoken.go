package scenario

import (
	"context"
	"crypto/rsa"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/idharness/idharness/fakeimds/token"
	"github.com/idharness/idharness/internal/probe"
	"github.com/idharness/idharness/internal/vault"
)

// localVault is a local run's protected resource: internal/vault on
// loopback, trusting the fake's signing key, with a secret per group
// using its tokens that only the identity the group should get may read.
// Tokens are presented as the in-cluster probe presents them
// (probe.ReadSecret), so that both runs judge the same use.
type localVault struct {
	url     string
	hc      *http.Client
	secrets map[string]string // group → secret name
	timeout time.Duration
}

// vaultSecret is the secret a group with useToken: vault reads locally.
func vaultSecret(group string) string { return "idharness-" + group }

// localVaultTimeout bounds one use of a token at the local vault when the
// group sets no timeout: the vault answers from memory on loopback.
const localVaultTimeout = 10 * time.Second

// startVault starts the run's vault when a group uses its tokens, and
// returns how to stop it. The vault accepts each such client's own
// resource as audience: clients ask for sub-resources of the vault's
// audience (see ClientGroup.Resource), which Key Vault would refuse but
// which keep the in-process SDKs' caches apart.
func (r *runner) startVault(key *rsa.PrivateKey) (func(), error) {
	cfg := vault.Config{Secrets: map[string]vault.Secret{}, Tenants: []string{r.cfg.TenantID}}
	secrets := map[string]string{}
	var timeout time.Duration
	for _, g := range r.s.Workload.Clients {
		if g.UseToken != UseTokenVault {
			continue
		}
		for i := 1; i <= g.Clients(); i++ {
			_, resource, _ := r.client(g, i)
			cfg.Audiences = append(cfg.Audiences, resource)
		}
		_, want := r.selection(g)
		readers := []string{vault.AnyReader}
		if oid := r.objectID(want); oid != "" {
			readers = []string{oid}
		}
		secrets[g.Name] = vaultSecret(g.Name)
		cfg.Secrets[vaultSecret(g.Name)] = vault.Secret{Value: "value-of-" + vaultSecret(g.Name), Readers: readers}
		timeout = max(timeout, g.Timeout.Duration)
	}
	if len(secrets) == 0 {
		return func() {}, nil
	}
	for _, id := range r.s.Setup.Identities {
		if id.TenantID != "" && !strings.EqualFold(id.TenantID, r.cfg.TenantID) {
			cfg.Tenants = append(cfg.Tenants, id.TenantID)
		}
	}
	signer, err := token.NewSigner(key)
	if err != nil {
		return nil, err
	}
	cfg.Keys = signer.JWKS().Keys
	v, err := vault.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("start the run's protected resource (useToken: vault): %w", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("start the run's protected resource (useToken: vault): %w", err)
	}
	srv := &http.Server{Handler: v.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	if timeout == 0 {
		timeout = localVaultTimeout
	}
	r.vault = &localVault{url: "http://" + ln.Addr().String(), secrets: secrets, timeout: timeout,
		hc: &http.Client{Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 64}}}
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}, nil
}

// objectID returns the object ID of the identity whose client ID is
// clientID, among the host's and the scenario's identities.
func (r *runner) objectID(clientID string) string {
	if clientID == "" {
		return ""
	}
	if sys := r.cfg.SystemAssigned; sys != nil && strings.EqualFold(sys.ClientID, clientID) {
		return sys.ObjectID
	}
	if strings.EqualFold(r.system.ClientID, clientID) {
		return r.system.ObjectID
	}
	for _, id := range r.s.Setup.Identities {
		if strings.EqualFold(id.ClientID, clientID) {
			return id.ObjectID
		}
	}
	return ""
}

// use reads the group's secret with tok and returns the vault's status
// and, when there was none or it was not 200, why.
func (v *localVault) use(ctx context.Context, group, tok string) (int, string) {
	status, _, err := probe.ReadSecret(ctx, v.hc, v.url, v.secrets[group], "", tok, v.timeout)
	if err == nil {
		return status, ""
	}
	if status == 0 && errors.Is(ctx.Err(), context.Canceled) {
		return 0, "cut off by the end of the workload"
	}
	return status, oneLine(err.Error())
}
