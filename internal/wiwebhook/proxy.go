package wiwebhook

// The IMDS-emulating proxy sidecar, for legacy clients that only know
// managed identity: they ask 169.254.169.254 for a token as on a VM, and
// the proxy, in the pod's network namespace, answers by exchanging the
// pod's projected service account token at the authority. Azure's
// webhook redirects the metadata address to the proxy's port with an
// iptables init container; this one puts the address on the pod's own
// loopback instead (see cmd/wiwebhook proxy), which needs no iptables
// binary and leaves the node's routing alone, with the same effect for
// clients.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/idharness/idharness/pkg/api/workloadidentity"
)

// What the webhook injects for pods annotated
// workloadidentity.ProxyAnnotation=true.
const (
	// ProxyContainer names the sidecar, a native sidecar (an init
	// container that keeps running), so it is up before the application
	// starts and does not keep a finished pod alive.
	ProxyContainer = "azwi-proxy"
	// ProxyHealthPort serves the sidecar's startup probe on the pod IP.
	ProxyHealthPort = 8001
	// ProxyCAEnv carries a PEM bundle the proxy trusts for the authority
	// besides the system roots (a fake authority's CA).
	ProxyCAEnv = "AZWI_PROXY_CA_PEM"
)

// imdsTokenPath is where IMDS clients ask for tokens.
const imdsTokenPath = "/metadata/identity/oauth2/token"

// Proxy answers IMDS token requests with tokens from the authority, for
// the identity in AZURE_CLIENT_ID (or the request's client_id), using
// the federated token file as the client assertion.
type Proxy struct {
	// AuthorityHost, TenantID, ClientID and TokenFile are what the webhook
	// injects as AZURE_AUTHORITY_HOST, AZURE_TENANT_ID, AZURE_CLIENT_ID and
	// AZURE_FEDERATED_TOKEN_FILE.
	AuthorityHost, TenantID, ClientID, TokenFile string
	// HTTP sends the token requests to the authority.
	HTTP *http.Client
	// Now is the clock of expires_on and not_before (default time.Now).
	Now func() time.Time
}

// ProxyFromEnv returns a proxy configured from the variables the webhook
// injects.
func ProxyFromEnv(hc *http.Client) (*Proxy, error) {
	p := &Proxy{AuthorityHost: os.Getenv(workloadidentity.EnvAuthorityHost), TenantID: os.Getenv(workloadidentity.EnvTenantID), ClientID: os.Getenv(workloadidentity.EnvClientID), TokenFile: os.Getenv(workloadidentity.EnvTokenFile), HTTP: hc}
	for k, v := range map[string]string{workloadidentity.EnvAuthorityHost: p.AuthorityHost, workloadidentity.EnvTenantID: p.TenantID, workloadidentity.EnvTokenFile: p.TokenFile} {
		if v == "" {
			return nil, fmt.Errorf("proxy: %s is not set; the proxy runs as the webhook injects it, in a pod labelled %s=true", k, workloadidentity.UseLabel)
		}
	}
	return p, nil
}

// imdsError is IMDS's error body.
type imdsError struct {
	Error       string `json:"error"`
	Description string `json:"error_description"`
}

// imdsToken is IMDS's token body: every field a JSON string.
type imdsToken struct {
	AccessToken  string `json:"access_token"`
	ClientID     string `json:"client_id"`
	ExpiresIn    string `json:"expires_in"`
	ExpiresOn    string `json:"expires_on"`
	ExtExpiresIn string `json:"ext_expires_in"`
	NotBefore    string `json:"not_before"`
	Resource     string `json:"resource"`
	TokenType    string `json:"token_type"`
}

func writeJSONBody(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// ServeHTTP answers GET /metadata/identity/oauth2/token as IMDS does for
// the pod's identity: Metadata: true required, resource required,
// client_id optional (other selectors are not something a federated
// identity can honour).
func (p *Proxy) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if strings.TrimSuffix(req.URL.Path, "/") != imdsTokenPath {
		http.NotFound(w, req)
		return
	}
	q := req.URL.Query()
	switch {
	case req.Method != http.MethodGet:
		writeJSONBody(w, http.StatusMethodNotAllowed, imdsError{"invalid_request", "only GET is supported"})
		return
	case !strings.EqualFold(req.Header.Get("Metadata"), "true"):
		writeJSONBody(w, http.StatusBadRequest, imdsError{"invalid_request", "Required metadata header not specified"})
		return
	case q.Get("resource") == "":
		writeJSONBody(w, http.StatusBadRequest, imdsError{"invalid_request", "Required audience parameter not specified"})
		return
	case q.Get("object_id") != "" || q.Get("msi_res_id") != "" || q.Get("mi_res_id") != "":
		writeJSONBody(w, http.StatusBadRequest, imdsError{"invalid_request", "the workload identity proxy selects identities by client_id only"})
		return
	}
	clientID := q.Get("client_id")
	if clientID == "" {
		clientID = p.ClientID
	}
	if clientID == "" {
		writeJSONBody(w, http.StatusBadRequest, imdsError{"invalid_request", "no client_id in the request and no azure.workload.identity/client-id on the service account"})
		return
	}
	tok, status, err := p.exchange(req.Context(), clientID, q.Get("resource"))
	if err != nil {
		writeJSONBody(w, status, imdsError{"invalid_request", err.Error()})
		return
	}
	writeJSONBody(w, http.StatusOK, tok)
}

// exchange asks the authority for a token for clientID and resource with
// the projected token, reread on every call because the kubelet rotates
// it. Errors come with the status to answer with.
func (p *Proxy) exchange(ctx context.Context, clientID, resource string) (imdsToken, int, error) {
	assertion, err := os.ReadFile(p.TokenFile)
	if err != nil || len(strings.TrimSpace(string(assertion))) == 0 {
		return imdsToken{}, http.StatusInternalServerError, fmt.Errorf("read the service account token %s: %v", p.TokenFile, err)
	}
	form := url.Values{
		"grant_type":            {"client_credentials"},
		"client_id":             {clientID},
		"scope":                 {strings.TrimSuffix(resource, "/") + "/.default"},
		"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
		"client_assertion":      {strings.TrimSpace(string(assertion))},
	}
	u := strings.TrimSuffix(p.AuthorityHost, "/") + "/" + url.PathEscape(p.TenantID) + "/oauth2/v2.0/token"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, strings.NewReader(form.Encode()))
	if err != nil {
		return imdsToken{}, http.StatusInternalServerError, fmt.Errorf("token request to %s: %w", u, err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	hc := p.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return imdsToken{}, http.StatusBadGateway, fmt.Errorf("token request to %s: %w", u, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return imdsToken{}, http.StatusBadGateway, fmt.Errorf("read the authority's answer: %w", err)
	}
	var aad struct {
		AccessToken string `json:"access_token"`
		TokenType   string `json:"token_type"`
		ExpiresIn   int64  `json:"expires_in"`
		Description string `json:"error_description"`
	}
	if err := json.Unmarshal(body, &aad); err != nil {
		return imdsToken{}, http.StatusBadGateway, fmt.Errorf("the authority answered %s with a body that is not JSON", resp.Status)
	}
	if resp.StatusCode != http.StatusOK || aad.AccessToken == "" {
		// Keep the authority's description (AADSTS code included): it is
		// what tells the user which federated credential is wrong.
		return imdsToken{}, http.StatusBadRequest, fmt.Errorf("the authority refused the exchange (%s): %s", resp.Status, aad.Description)
	}
	now := time.Now
	if p.Now != nil {
		now = p.Now
	}
	t := now()
	in := strconv.FormatInt(aad.ExpiresIn, 10)
	return imdsToken{
		AccessToken: aad.AccessToken, ClientID: clientID, ExpiresIn: in, ExtExpiresIn: in,
		ExpiresOn: strconv.FormatInt(t.Unix()+aad.ExpiresIn, 10), NotBefore: strconv.FormatInt(t.Unix(), 10),
		Resource: resource, TokenType: aad.TokenType,
	}, http.StatusOK, nil
}
