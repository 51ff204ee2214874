package fakeimds

// The authority face: the slice of Azure AD that workload identity talks
// to. A workload presents an external token (a Kubernetes service account
// token, a CI job's OIDC token) as a client assertion; the authority checks
// it against the identity's federated credentials and answers with that
// identity's access token. Alongside it are the endpoints MSAL-based
// clients visit first: instance discovery, the tenant's OIDC discovery
// document and its signing keys.

import (
	"crypto/tls"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/idharness/idharness/fakeimds/config"
	"github.com/idharness/idharness/fakeimds/identity"
	"github.com/idharness/idharness/fakeimds/routes"
)

// Paths of the authority face, from the route table the fault engine
// lints rules against. {tenant} is a tenant ID (or a name such as
// "common" for the discovery endpoints).
const (
	AuthorityTokenPath     = routes.AuthorityToken
	AuthorityKeysPath      = routes.AuthorityKeys
	AuthorityKeysV1Path    = routes.AuthorityKeysV1
	AuthorityDiscoveryPath = routes.AuthorityDiscovery
	InstanceDiscoveryPath  = routes.InstanceDiscovery
)

// JWTBearerAssertionType is the only client_assertion_type the authority
// accepts, as Azure AD does for federated credentials.
const JWTBearerAssertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// maxFormBytes bounds a token request body; real requests are a few KiB.
const maxFormBytes = 64 << 10

// assertionAlgs are the signature algorithms accepted on assertions. Only
// asymmetric ones: an HMAC "signature" would let anyone who knows the
// public key forge assertions, and "none" is never acceptable.
var assertionAlgs = []jose.SignatureAlgorithm{
	jose.RS256, jose.RS384, jose.RS512,
	jose.PS256, jose.PS384, jose.PS512,
	jose.ES256, jose.ES384, jose.ES512,
	jose.EdDSA,
}

// authority holds the authority face's state: its settings, the cache of
// external issuers' signing keys, and the HTTPS certificate once made.
type authority struct {
	cfg  config.Authority
	log  *slog.Logger
	keys *keyCache

	tlsOnce sync.Once
	tlsCfg  *tls.Config
	tlsErr  error
	// ca signed the served certificate, when known (generated, or
	// tlsCaFile): a tls-certificate fault's expired certificate chains
	// to it. Set once by serverTLS.
	ca *certAuthority

	// faultCerts are the certificates tls-certificate faults serve, made
	// on first use, by kind.
	faultMu    sync.Mutex
	faultCerts map[string]*tls.Certificate
}

// newAuthority checks what can be checked before serving (the configured
// issuers' CA files) so that a bad setting stops the server at start.
func newAuthority(cfg config.Authority, log *slog.Logger) (*authority, error) {
	kc, err := newKeyCache(cfg.Issuers, log)
	if err != nil {
		return nil, fmt.Errorf("authority: %w", err)
	}
	return &authority{cfg: cfg, log: log, keys: kc}, nil
}

// mountAuthority registers the authority's endpoints on mux. The token
// endpoint takes every method so that a GET gets Azure AD's own error
// rather than the mux's bare 405.
func (s *Server) mountAuthority(mux *http.ServeMux) {
	h := func(f http.HandlerFunc) http.Handler { return s.record(FaceAuthority, f) }
	mux.Handle(AuthorityTokenPath, h(s.serveAuthorityToken))
	mux.Handle("GET "+AuthorityKeysPath, h(s.serveAuthorityKeys))
	mux.Handle("GET "+AuthorityKeysV1Path, h(s.serveAuthorityKeys))
	mux.Handle("GET "+AuthorityDiscoveryPath, h(s.serveOpenIDConfiguration))
	mux.Handle("GET "+InstanceDiscoveryPath, h(s.serveInstanceDiscovery))
}

// AADError is the error body of Azure AD's token endpoint. Clients show
// error_description to users, and some match on error_codes.
type AADError struct {
	Error         string `json:"error"`
	Description   string `json:"error_description"`
	Codes         []int  `json:"error_codes"`
	Timestamp     string `json:"timestamp"`
	TraceID       string `json:"trace_id"`
	CorrelationID string `json:"correlation_id"`
	ErrorURI      string `json:"error_uri"`
}

// AADToken is the 200 body of Azure AD's v2 token endpoint for the client
// credentials grant. Unlike IMDS, the lifetimes are JSON numbers.
type AADToken struct {
	TokenType    string `json:"token_type"`
	ExpiresIn    int64  `json:"expires_in"`
	ExtExpiresIn int64  `json:"ext_expires_in"`
	AccessToken  string `json:"access_token"`
}

// aadFailure is a refusal on its way to becoming an AADError.
type aadFailure struct {
	status int
	err    string
	code   int
	msg    string
}

// aadTimestamp is how Azure AD writes times in error bodies.
const aadTimestamp = "2006-01-02 15:04:05Z"

// writeAADError answers with Azure AD's error shape. The description ends
// with the trace ID, correlation ID and timestamp as Azure AD appends them;
// the correlation ID echoes the client's client-request-id when it sent
// one, as Azure AD does, so client logs and the journal line up.
func (s *Server) writeAADError(w http.ResponseWriter, req *http.Request, f aadFailure) {
	now := s.minter.Now().UTC()
	trace := newCorrelationID()
	corr := req.Header.Get("client-request-id")
	if !guidPattern.MatchString(corr) {
		corr = newCorrelationID()
	}
	ts := now.Format(aadTimestamp)
	code := fmt.Sprintf("AADSTS%d", f.code)
	note(w).Error = code
	h := w.Header()
	h.Set("x-ms-request-id", trace)
	h.Set("client-request-id", corr)
	writeJSON(w, f.status, AADError{
		Error:         f.err,
		Description:   fmt.Sprintf("%s: %s Trace ID: %s Correlation ID: %s Timestamp: %s", code, f.msg, trace, corr, ts),
		Codes:         []int{f.code},
		Timestamp:     ts,
		TraceID:       trace,
		CorrelationID: corr,
		ErrorURI:      fmt.Sprintf("%s/error?code=%d", requestBase(req), f.code),
	})
}

var guidPattern = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

// tenantPattern accepts what Azure AD accepts as a tenant in a path: a
// GUID or a DNS name (contoso.onmicrosoft.com, common).
var tenantPattern = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9.-]{0,254})$`)

func missingParam(name string) *aadFailure {
	return &aadFailure{http.StatusBadRequest, "invalid_request", 900144,
		fmt.Sprintf("The request body must contain the following parameter: '%s'.", name)}
}

// serveAuthorityToken implements POST /{tenant}/oauth2/v2.0/token for the
// client credentials grant with a federated client assertion.
func (s *Server) serveAuthorityToken(w http.ResponseWriter, req *http.Request) {
	tok, fail := s.exchange(w, req)
	if fail != nil {
		s.writeAADError(w, req, *fail)
		return
	}
	h := w.Header()
	h.Set("Cache-Control", "no-store, no-cache")
	h.Set("Pragma", "no-cache")
	if v := req.Header.Get("client-request-id"); guidPattern.MatchString(v) {
		h.Set("client-request-id", v)
	}
	writeJSON(w, http.StatusOK, tok)
}

// exchange checks a token request and returns the token to send, or the
// refusal. Each rule names the Azure AD error it mirrors.
func (s *Server) exchange(w http.ResponseWriter, req *http.Request) (AADToken, *aadFailure) {
	if req.Method != http.MethodPost {
		return AADToken{}, &aadFailure{http.StatusBadRequest, "invalid_request", 900561,
			fmt.Sprintf("The endpoint only accepts POST, OPTIONS requests. Received a %s request.", req.Method)}
	}
	tenant := req.PathValue("tenant")
	if !tenantPattern.MatchString(tenant) {
		return AADToken{}, &aadFailure{http.StatusBadRequest, "invalid_request", 900023,
			fmt.Sprintf("Specified tenant identifier '%s' is neither a valid DNS name, nor a valid external domain.", tenant)}
	}
	req.Body = http.MaxBytesReader(w, req.Body, maxFormBytes)
	// A body that is not a form (or is too large) reads as an empty form,
	// which then fails on the first missing parameter, as Azure AD does.
	_ = req.ParseForm()
	form := req.PostForm
	grant := form.Get("grant_type")
	switch {
	case grant == "":
		return AADToken{}, missingParam("grant_type")
	case grant != "client_credentials":
		return AADToken{}, &aadFailure{http.StatusBadRequest, "unsupported_grant_type", 70003,
			fmt.Sprintf("The app requested an unsupported grant type '%s'.", grant)}
	}
	clientID := form.Get("client_id")
	if clientID == "" {
		return AADToken{}, missingParam("client_id")
	}
	sel := identity.Selector{Kind: identity.ByClientID, Value: clientID}
	note(w).Selector = sel.String()
	scope := form.Get("scope")
	if scope == "" {
		return AADToken{}, missingParam("scope")
	}
	resource, ok := resourceOfScope(scope)
	if !ok {
		return AADToken{}, &aadFailure{http.StatusBadRequest, "invalid_scope", 1002012,
			fmt.Sprintf("The provided value for scope %s is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).", scope)}
	}
	if len(resource) > maxResourceBytes {
		return AADToken{}, &aadFailure{http.StatusBadRequest, "invalid_scope", 70011,
			fmt.Sprintf("The provided value for the input parameter 'scope' is not valid. Its resource is %d bytes long; send the resource's URI, at most %d bytes.", len(resource), maxResourceBytes)}
	}
	note(w).Resource = resource
	assertionType, assertion := form.Get("client_assertion_type"), form.Get("client_assertion")
	if assertion == "" || assertionType != JWTBearerAssertionType {
		return AADToken{}, &aadFailure{http.StatusUnauthorized, "invalid_client", 7000216,
			"'client_assertion', 'client_secret' or 'request' is required for the 'client_credentials' grant type."}
	}
	id, found := s.store.Lookup(clientID)
	if !found || !strings.EqualFold(s.minter.TenantOf(id), tenant) {
		return AADToken{}, &aadFailure{http.StatusBadRequest, "unauthorized_client", 700016,
			fmt.Sprintf("Application with identifier '%s' was not found in the directory '%s'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant.", clientID, tenant)}
	}
	noteIdentity(w, sel, id)
	now := s.minter.Now()
	// A clock-skew fault is the authority's clock being off: it judges the
	// assertion's exp and nbf by that clock too, as it shifts the token.
	if fx := effectsOf(w); fx != nil && fx.Shift != nil {
		now = now.Add(fx.Shift.Offset)
	}
	if fail := s.auth.verifyAssertion(req, id, assertion, now); fail != nil {
		return AADToken{}, fail
	}
	t, err := s.tokenFor(w, id, resource, s.minter.Now())
	if err != nil {
		s.log.Error("mint token", "face", FaceAuthority, "identity", id.Name, "err", err)
		return AADToken{}, &aadFailure{http.StatusInternalServerError, "temporarily_unavailable", 90033,
			"A transient error has occurred. Please try again."}
	}
	in := t.ExpiresIn(s.minter.Now())
	return AADToken{TokenType: "Bearer", ExpiresIn: in, ExtExpiresIn: in, AccessToken: t.Raw}, nil
}

// oidcScopes may accompany a resource's /.default scope; MSAL adds them to
// some flows and Azure AD ignores them for client credentials.
var oidcScopes = map[string]bool{"openid": true, "profile": true, "offline_access": true, "email": true}

// resourceOfScope returns the resource a client credentials scope names:
// exactly one "<resource>/.default" (besides OIDC scopes), resource being
// the scope without the suffix.
func resourceOfScope(scope string) (string, bool) {
	var resource string
	n := 0
	for _, f := range strings.Fields(scope) {
		if oidcScopes[f] {
			continue
		}
		n++
		r, ok := strings.CutSuffix(f, "/.default")
		if !ok || r == "" {
			return "", false
		}
		resource = r
	}
	return resource, n == 1
}

// verifyAssertion checks a client assertion for id as Azure AD does for
// federated credentials: well-formed, within its valid time range (with
// the configured clock skew), matching one of id's federated credentials
// by issuer, subject and audience, and signed by a key the issuer
// publishes. Keys are fetched only for an issuer that a matching
// credential names, so a caller cannot make the server fetch arbitrary
// URLs.
func (a *authority) verifyAssertion(req *http.Request, id identity.Identity, raw string, now time.Time) *aadFailure {
	malformed := &aadFailure{http.StatusBadRequest, "invalid_request", 50027, "JWT token is invalid or malformed."}
	tok, err := jwt.ParseSigned(raw, assertionAlgs)
	if err != nil || len(tok.Headers) != 1 {
		return malformed
	}
	var c jwt.Claims
	if err := tok.UnsafeClaimsWithoutVerification(&c); err != nil || c.Expiry == nil {
		return malformed
	}
	if fail := a.checkTime(c, now); fail != nil {
		return fail
	}
	if _, ok := matchFederated(id.Federated, c); !ok {
		return &aadFailure{http.StatusBadRequest, "invalid_request", 70021,
			fmt.Sprintf("No matching federated identity record found for presented assertion. Assertion Issuer: '%s'. Assertion Subject: '%s'. Assertion Audience: '%s'. https://learn.microsoft.com/entra/workload-id/workload-identity-federation",
				c.Issuer, c.Subject, strings.Join(c.Audience, ","))}
	}
	kid := tok.Headers[0].KeyID
	keys, err := a.keys.lookup(req.Context(), c.Issuer, kid)
	if err != nil {
		a.log.Warn("fetch issuer keys", "issuer", c.Issuer, "err", err)
		return &aadFailure{http.StatusBadRequest, "invalid_request", 50166,
			fmt.Sprintf("Request to External OIDC endpoint failed. Issuer: '%s'.", c.Issuer)}
	}
	for _, k := range keys {
		var verified jwt.Claims
		if tok.Claims(k.Key, &verified) == nil {
			return nil
		}
	}
	reason := "Key was found, but use of the key to verify the signature failed."
	if len(keys) == 0 {
		reason = "The key was not found."
	}
	return &aadFailure{http.StatusUnauthorized, "invalid_client", 700027,
		fmt.Sprintf("Client assertion failed signature validation. [Reason - %s, Key ID of key used by client: '%s', Issuer: '%s']", reason, kid, c.Issuer)}
}

// aadTimeValue is how Azure AD writes times in AADSTS700024.
const aadTimeValue = "2006-01-02T15:04:05.0000000Z"

// checkTime refuses an assertion that is expired or not yet valid beyond
// the clock skew.
func (a *authority) checkTime(c jwt.Claims, now time.Time) *aadFailure {
	skew := a.cfg.ClockSkew.Duration
	exp := c.Expiry.Time()
	nbf := time.Unix(0, 0)
	if c.NotBefore != nil {
		nbf = c.NotBefore.Time()
	}
	if now.Before(exp.Add(skew)) && !now.Add(skew).Before(nbf) {
		return nil
	}
	return &aadFailure{http.StatusBadRequest, "invalid_client", 700024,
		fmt.Sprintf("Client assertion is not within its valid time range. Current time: %s, assertion valid from %s, expiry time of assertion %s. Review the documentation at https://learn.microsoft.com/entra/identity-platform/certificate-credentials .",
			now.UTC().Format(aadTimeValue), nbf.UTC().Format(aadTimeValue), exp.UTC().Format(aadTimeValue))}
}

// matchFederated returns the federated credential that trusts the
// assertion: issuer and subject equal (case-sensitive, as Azure AD now
// compares them) and one of the assertion's audiences among the
// credential's, which default to api://AzureADTokenExchange.
func matchFederated(creds []identity.FederatedCredential, c jwt.Claims) (identity.FederatedCredential, bool) {
	for _, f := range creds {
		if f.Issuer != c.Issuer || f.Subject != c.Subject || c.Issuer == "" || c.Subject == "" {
			continue
		}
		auds := f.Audiences
		if len(auds) == 0 {
			auds = []string{identity.DefaultFederatedAudience}
		}
		for _, want := range auds {
			if c.Audience.Contains(want) {
				return f, true
			}
		}
	}
	return identity.FederatedCredential{}, false
}

// serveAuthorityKeys publishes the signing keys of the tokens the server
// mints, for every tenant, as Azure AD does.
func (s *Server) serveAuthorityKeys(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Cache-Control", "max-age=86400, private")
	writeJSON(w, http.StatusOK, s.minter.Signer().JWKS())
}

// requestBase returns scheme://host of the request as the client addressed
// it, so that discovery documents point back at the fake whatever name or
// port the client used.
func requestBase(req *http.Request) string {
	scheme := "http"
	if req.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + req.Host
}

// serveOpenIDConfiguration answers the tenant's OIDC discovery document
// with every endpoint on the host the request came to.
func (s *Server) serveOpenIDConfiguration(w http.ResponseWriter, req *http.Request) {
	tenant := req.PathValue("tenant")
	if !tenantPattern.MatchString(tenant) {
		s.writeAADError(w, req, aadFailure{http.StatusBadRequest, "invalid_tenant", 90002,
			fmt.Sprintf("Tenant '%s' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud.", tenant)})
		return
	}
	base := requestBase(req)
	t := base + "/" + tenant
	issuerTenant := tenant
	switch strings.ToLower(tenant) {
	case "common", "organizations", "consumers":
		// Multi-tenant documents carry a placeholder, as Azure AD's do.
		issuerTenant = "{tenantid}"
	}
	w.Header().Set("Cache-Control", "max-age=86400, private")
	writeJSON(w, http.StatusOK, openIDConfiguration{
		TokenEndpoint:                     t + "/oauth2/v2.0/token",
		TokenEndpointAuthMethodsSupported: []string{"client_secret_post", "private_key_jwt", "client_secret_basic"},
		JWKSURI:                           t + "/discovery/v2.0/keys",
		ResponseModesSupported:            []string{"query", "fragment", "form_post"},
		SubjectTypesSupported:             []string{"pairwise"},
		IDTokenSigningAlgValuesSupported:  []string{"RS256"},
		ResponseTypesSupported:            []string{"code", "id_token", "code id_token", "id_token token"},
		ScopesSupported:                   []string{"openid", "profile", "email", "offline_access"},
		Issuer:                            base + "/" + issuerTenant + "/v2.0",
		RequestURIParameterSupported:      false,
		UserinfoEndpoint:                  base + "/oidc/userinfo",
		AuthorizationEndpoint:             t + "/oauth2/v2.0/authorize",
		DeviceAuthorizationEndpoint:       t + "/oauth2/v2.0/devicecode",
		HTTPLogoutSupported:               true,
		FrontchannelLogoutSupported:       true,
		EndSessionEndpoint:                t + "/oauth2/v2.0/logout",
		ClaimsSupported:                   []string{"sub", "iss", "cloud_instance_name", "cloud_instance_host_name", "cloud_graph_host_name", "msgraph_host", "aud", "exp", "iat", "auth_time", "acr", "nonce", "preferred_username", "name", "tid", "ver", "at_hash", "c_hash", "email"},
		KerberosEndpoint:                  t + "/kerberos",
		TenantRegionScope:                 "NA",
		CloudInstanceName:                 "microsoftonline.com",
		CloudGraphHostName:                "graph.windows.net",
		MSGraphHost:                       "graph.microsoft.com",
		RBACURL:                           "https://pas.windows.net",
	})
}

// openIDConfiguration is Azure AD's v2 OIDC discovery document.
type openIDConfiguration struct {
	TokenEndpoint                     string   `json:"token_endpoint"`
	TokenEndpointAuthMethodsSupported []string `json:"token_endpoint_auth_methods_supported"`
	JWKSURI                           string   `json:"jwks_uri"`
	ResponseModesSupported            []string `json:"response_modes_supported"`
	SubjectTypesSupported             []string `json:"subject_types_supported"`
	IDTokenSigningAlgValuesSupported  []string `json:"id_token_signing_alg_values_supported"`
	ResponseTypesSupported            []string `json:"response_types_supported"`
	ScopesSupported                   []string `json:"scopes_supported"`
	Issuer                            string   `json:"issuer"`
	RequestURIParameterSupported      bool     `json:"request_uri_parameter_supported"`
	UserinfoEndpoint                  string   `json:"userinfo_endpoint"`
	AuthorizationEndpoint             string   `json:"authorization_endpoint"`
	DeviceAuthorizationEndpoint       string   `json:"device_authorization_endpoint"`
	HTTPLogoutSupported               bool     `json:"http_logout_supported"`
	FrontchannelLogoutSupported       bool     `json:"frontchannel_logout_supported"`
	EndSessionEndpoint                string   `json:"end_session_endpoint"`
	ClaimsSupported                   []string `json:"claims_supported"`
	KerberosEndpoint                  string   `json:"kerberos_endpoint"`
	TenantRegionScope                 string   `json:"tenant_region_scope"`
	CloudInstanceName                 string   `json:"cloud_instance_name"`
	CloudGraphHostName                string   `json:"cloud_graph_host_name"`
	MSGraphHost                       string   `json:"msgraph_host"`
	RBACURL                           string   `json:"rbac_url"`
}

// InstanceDiscovery is the body of GET /common/discovery/instance.
type InstanceDiscovery struct {
	TenantDiscoveryEndpoint string                      `json:"tenant_discovery_endpoint"`
	APIVersion              string                      `json:"api-version"`
	Metadata                []InstanceDiscoveryMetadata `json:"metadata"`
}

// InstanceDiscoveryMetadata groups host names that are one cloud.
type InstanceDiscoveryMetadata struct {
	PreferredNetwork string   `json:"preferred_network"`
	PreferredCache   string   `json:"preferred_cache"`
	Aliases          []string `json:"aliases"`
}

// publicCloudAliases are the host names of Azure AD's public cloud.
var publicCloudAliases = []string{"login.microsoftonline.com", "login.windows.net", "login.microsoft.com", "sts.windows.net"}

// serveInstanceDiscovery answers MSAL's instance discovery for any
// authority host: MSAL asks login.microsoftonline.com about hosts it does
// not know, and the real service would refuse the fake's host, so clients
// would otherwise have to turn instance discovery off. The answer points
// tenant discovery at the host named in authorization_endpoint.
func (s *Server) serveInstanceDiscovery(w http.ResponseWriter, req *http.Request) {
	q := req.URL.Query()
	u, err := url.Parse(q.Get("authorization_endpoint"))
	segs := []string{}
	if err == nil {
		segs = strings.Split(strings.Trim(u.Path, "/"), "/")
	}
	if err != nil || u.Scheme != "https" || u.Host == "" || !tenantPattern.MatchString(segs[0]) {
		s.writeAADError(w, req, aadFailure{http.StatusBadRequest, "invalid_instance", 50049, "Unknown or invalid instance."})
		return
	}
	host := strings.ToLower(u.Host)
	md := InstanceDiscoveryMetadata{PreferredNetwork: host, PreferredCache: host, Aliases: []string{host}}
	for _, a := range publicCloudAliases {
		if a == host {
			md = InstanceDiscoveryMetadata{PreferredNetwork: "login.microsoftonline.com", PreferredCache: "login.windows.net", Aliases: publicCloudAliases}
		}
	}
	writeJSON(w, http.StatusOK, InstanceDiscovery{
		TenantDiscoveryEndpoint: "https://" + u.Host + "/" + segs[0] + "/v2.0/.well-known/openid-configuration",
		APIVersion:              "1.1",
		Metadata:                []InstanceDiscoveryMetadata{md},
	})
}

// decodeJWKS parses a JSON Web Key Set, dropping encryption keys.
func decodeJWKS(b []byte) (jose.JSONWebKeySet, error) {
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(b, &set); err != nil {
		return jose.JSONWebKeySet{}, fmt.Errorf("parse JWKS: %w", err)
	}
	keys := set.Keys[:0]
	for _, k := range set.Keys {
		if k.Use == "" || k.Use == "sig" {
			keys = append(keys, k)
		}
	}
	set.Keys = keys
	return set, nil
}
