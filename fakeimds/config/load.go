package config

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/idharness/idharness/fakeimds/chaos"
	"github.com/idharness/idharness/fakeimds/identity"
	"github.com/idharness/idharness/pkg/yamlfile"
)

// EnvPrefix prefixes every environment variable fakeimds reads.
const EnvPrefix = "FAKEIMDS_"

// Setting is one scalar option that both a flag and an environment
// variable can set. Flags and env share this table so the two never drift.
type Setting struct {
	// Flag is the flag name; the env name is EnvPrefix + upper snake case.
	Flag  string
	Usage string
	apply func(c *Config, v string) error
}

// Env returns the setting's environment variable name.
func (s Setting) Env() string {
	return EnvPrefix + strings.ToUpper(strings.ReplaceAll(s.Flag, "-", "_"))
}

func str(p func(*Config) *string) func(*Config, string) error {
	return func(c *Config, v string) error { *p(c) = v; return nil }
}

func dur(p func(*Config) *Duration) func(*Config, string) error {
	return func(c *Config, v string) error {
		d, err := time.ParseDuration(v)
		if err != nil {
			return fmt.Errorf("want a duration such as 90s or 24h, got %q", v)
		}
		p(c).Duration = d
		return nil
	}
}

func boolean(p func(*Config) **bool) func(*Config, string) error {
	return func(c *Config, v string) error {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("want true or false, got %q", v)
		}
		*p(c) = &b
		return nil
	}
}

// Settings lists every option settable by flag and env.
var Settings = []Setting{
	{"tenant-id", "Azure AD tenant of identities that name none", str(func(c *Config) *string { return &c.TenantID })},
	{"imds-addr", "listen address of the metadata faces (and of the App Service and authority faces unless --services-addr)", str(func(c *Config) *string { return &c.Listen.IMDS })},
	{"services-addr", "listen address of the App Service and authority faces, apart from the metadata faces (empty: on --imds-addr)", str(func(c *Config) *string { return &c.Listen.Services })},
	{"control-addr", "listen address of the control API and /metrics (never the IMDS address)", str(func(c *Config) *string { return &c.Listen.Control })},
	{"control-token-file", "file with the secret every control request must send in X-Idharness-Control-Token (required unless --control-addr is loopback)", str(func(c *Config) *string { return &c.Listen.ControlTokenFile })},
	{"authority-tls-addr", "also serve the authority over HTTPS on this address (empty: off)", str(func(c *Config) *string { return &c.Listen.AuthorityTLS })},
	{"link-local", "put this address (169.254.169.254) on the host's loopback before listening; needs CAP_NET_ADMIN", str(func(c *Config) *string { return &c.Listen.LinkLocal })},
	{"shadow-metadata", "take --link-local even where the network routes it to a real metadata service (an Azure VM)", func(c *Config, v string) error {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("want true or false, got %q", v)
		}
		c.Listen.ShadowMetadata = b
		return nil
	}},
	{"token-lifetime", "default token lifetime, e.g. 24h or 90s", dur(func(c *Config) *Duration { return &c.Tokens.Lifetime })},
	{"token-cache", "reuse tokens per identity and resource until near expiry", boolean(func(c *Config) **bool { return &c.Tokens.Cache })},
	{"token-refresh-before", "replace a cached token with less than this left", dur(func(c *Config) *Duration { return &c.Tokens.RefreshBefore })},
	{"signing-key", "PEM RSA key file that signs tokens (empty: generate one)", str(func(c *Config) *string { return &c.Tokens.SigningKeyFile })},
	{"imds", "serve the IMDS token endpoint", boolean(func(c *Config) **bool { return &c.Faces.IMDS.Enabled })},
	{"instance", "serve /metadata/instance and /metadata/versions", boolean(func(c *Config) **bool { return &c.Faces.Instance.Enabled })},
	{"app-service", "serve the App Service identity endpoint", boolean(func(c *Config) **bool { return &c.Faces.AppService.Enabled })},
	{"app-service-path", "path of the App Service identity endpoint", str(func(c *Config) *string { return &c.Faces.AppService.Path })},
	{"app-service-secret", "value clients must send in X-IDENTITY-HEADER", str(func(c *Config) *string { return &c.Faces.AppService.Secret })},
	{"arc", "serve the Azure Arc identity endpoint on its own listener", boolean(func(c *Config) **bool { return &c.Faces.Arc.Enabled })},
	{"arc-addr", "listen address of the Arc endpoint", str(func(c *Config) *string { return &c.Faces.Arc.Addr })},
	{"arc-secret-dir", "directory for the Arc challenge's secret files", str(func(c *Config) *string { return &c.Faces.Arc.SecretDir })},
	{"authority", "serve the Azure AD authority (token exchange, keys, discovery)", boolean(func(c *Config) **bool { return &c.Faces.Authority.Enabled })},
	{"tls-dir", "directory where the generated authority CA certificate is written", str(func(c *Config) *string { return &c.Faces.Authority.TLSDir })},
	{"tls-hosts", "comma-separated extra host names and IPs of the generated authority certificate", func(c *Config, v string) error {
		c.Faces.Authority.TLSHosts = nil
		for _, h := range strings.Split(v, ",") {
			if h = strings.TrimSpace(h); h != "" {
				c.Faces.Authority.TLSHosts = append(c.Faces.Authority.TLSHosts, h)
			}
		}
		return nil
	}},
	{"seed", "seed of fault randomness (0: pick one and log it)", func(c *Config, v string) error {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return fmt.Errorf("want an integer, got %q", v)
		}
		c.Chaos.Seed = n
		return nil
	}},
	{"throttle", "enforce IMDS's documented rate limits (5/s metadata, 20/s and 5 concurrent tokens)", boolean(func(c *Config) **bool { return &c.Chaos.Throttle.Enabled })},
	{"log-level", "debug, info, warn or error", str(func(c *Config) *string { return &c.Log.Level })},
	{"log-format", "text or json", str(func(c *Config) *string { return &c.Log.Format })},
}

// FileError is a problem in a configuration file, at a line where it is
// known ("fakeimds.yaml:12: tokens.lifetime: must be positive"). LoadFile
// returns it for syntax errors, unknown or mistyped fields and invalid
// values, so that a program embedding fakeimds can point at the line.
// Its fields are those of the module's strict YAML decoder's error
// (pkg/yamlfile.Error), in the same order, so that one converts into the
// other and the message is written once; it stays a type of this package
// so that a caller of LoadFile needs no second import to errors.As it.
type FileError struct {
	// File is the file's path as given to LoadFile.
	File string
	// Line is the 1-based line of the problem; 0 when unknown.
	Line int
	// Field is the field's path (tokens.lifetime); "" for a syntax error.
	Field string
	// Err is the problem.
	Err error
}

func (e *FileError) Error() string { return (*yamlfile.Error)(e).Error() }

// Unwrap returns the problem.
func (e *FileError) Unwrap() error { return e.Err }

// LoadFile reads a YAML file over c's current values. Problems in the
// file are *FileError.
func LoadFile(c *Config, path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read config: %w", err)
	}
	if err := yamlfile.Decode(path, data, c); err != nil {
		if ye, ok := err.(*yamlfile.Error); ok {
			return (*FileError)(ye)
		}
		return err
	}
	if err := c.Validate(); err != nil {
		var fe *FieldError
		if errors.As(err, &fe) {
			return &FileError{File: path, Line: yamlfile.Line(data, fe.Field), Field: fe.Field, Err: errors.New(fe.Problem)}
		}
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// ApplyEnv applies the FAKEIMDS_* variables that lookup finds.
func ApplyEnv(c *Config, lookup func(string) (string, bool)) error {
	for _, s := range Settings {
		v, ok := lookup(s.Env())
		if !ok {
			continue
		}
		if err := s.apply(c, v); err != nil {
			return &FieldError{Source: "env", Field: s.Env(), Problem: err.Error()}
		}
	}
	return nil
}

// BindFlags registers a flag per setting on fs. Only flags the user sets
// are applied, by ApplyFlags, after the file and env.
func BindFlags(fs *flag.FlagSet) {
	for _, s := range Settings {
		fs.String(s.Flag, "", s.Usage+" (env "+s.Env()+")")
	}
}

// ApplyFlags applies the flags set on fs (parsed already).
func ApplyFlags(c *Config, fs *flag.FlagSet) error {
	byName := map[string]Setting{}
	for _, s := range Settings {
		byName[s.Flag] = s
	}
	var err error
	fs.Visit(func(f *flag.Flag) {
		s, ok := byName[f.Name]
		if !ok || err != nil {
			return
		}
		if e := s.apply(c, f.Value.String()); e != nil {
			err = &FieldError{Source: "flags", Field: "--" + f.Name, Problem: e.Error()}
		}
	})
	return err
}

var guid = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

// Validate checks the whole configuration and returns the first problem
// as a *FieldError.
func (c *Config) Validate() error {
	bad := func(field, format string, a ...any) error {
		return &FieldError{Field: field, Problem: fmt.Sprintf(format, a...)}
	}
	if !guid.MatchString(c.TenantID) {
		return bad("tenantId", "want a GUID such as 72f988bf-86f1-41af-91ab-2d7cd011db47, got %q", c.TenantID)
	}
	if c.Host.Name == "" {
		return bad("host.name", "required: the VM name that instance metadata reports")
	}
	if !guid.MatchString(c.Host.SubscriptionID) {
		return bad("host.subscriptionId", "want a GUID, got %q", c.Host.SubscriptionID)
	}
	if c.Host.ResourceGroup == "" {
		return bad("host.resourceGroup", "required")
	}
	seen := map[string]string{}
	check := func(field string, id Identity) error {
		if !guid.MatchString(id.ClientID) {
			return bad(field+".clientId", "want a GUID, got %q", id.ClientID)
		}
		if !guid.MatchString(id.ObjectID) {
			return bad(field+".objectId", "want a GUID, got %q", id.ObjectID)
		}
		if id.TenantID != "" && !guid.MatchString(id.TenantID) {
			return bad(field+".tenantId", "want a GUID, got %q", id.TenantID)
		}
		if id.TokenLifetime.Duration < 0 {
			return bad(field+".tokenLifetime", "must not be negative")
		}
		for _, k := range []string{strings.ToLower(id.ClientID), strings.ToLower(id.ObjectID)} {
			if prev, dup := seen[k]; dup {
				return bad(field, "ID %s is also used by %s; every client and object ID must be unique", k, prev)
			}
			seen[k] = field
		}
		for i, f := range id.FederatedCredentials {
			ff := fmt.Sprintf("%s.federatedCredentials[%d]", field, i)
			if !strings.HasPrefix(f.Issuer, "https://") && !strings.HasPrefix(f.Issuer, "http://") {
				return bad(ff+".issuer", "want the issuer URL exactly as tokens carry it in iss, got %q", f.Issuer)
			}
			if f.Subject == "" {
				return bad(ff+".subject", "required: the sub of trusted tokens, e.g. system:serviceaccount:NAMESPACE:NAME")
			}
		}
		return nil
	}
	if c.SystemAssigned != nil {
		if c.SystemAssigned.ResourceID != "" {
			return bad("systemAssigned.resourceId", "leave empty: a system-assigned identity's resource ID is the host's (%s)", c.Host.ResourceID())
		}
		if err := check("systemAssigned", *c.SystemAssigned); err != nil {
			return err
		}
	}
	names := map[string]bool{}
	for i, u := range c.UserAssigned {
		f := fmt.Sprintf("userAssigned[%d]", i)
		if u.Name == "" {
			return bad(f+".name", "required: the identity's name (its resource ID ends with it)")
		}
		if names[u.Name] {
			return bad(f+".name", "%q is used twice", u.Name)
		}
		names[u.Name] = true
		if u.ResourceID != "" && !strings.HasPrefix(strings.ToLower(u.ResourceID), "/subscriptions/") {
			return bad(f+".resourceId", "want an ARM resource ID starting /subscriptions/, got %q", u.ResourceID)
		}
		if err := check(f, u); err != nil {
			return err
		}
	}
	if c.Tokens.Lifetime.Duration <= 0 {
		return bad("tokens.lifetime", "must be positive, e.g. 24h (the real default) or 90s for expiry tests")
	}
	if c.Tokens.RefreshBefore.Duration < 0 {
		return bad("tokens.refreshBefore", "must not be negative")
	}
	if c.Listen.Control == "" {
		return bad("listen.control", "required")
	}
	for _, a := range []struct{ field, addr string }{{"listen.imds", c.Listen.IMDS}, {"listen.services", c.Listen.Services}, {"listen.control", c.Listen.Control}, {"listen.authorityTls", c.Listen.AuthorityTLS}, {"faces.arc.addr", c.Faces.Arc.Addr}} {
		if a.addr == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(a.addr); err != nil {
			return bad(a.field, "want host:port or :port, got %q", a.addr)
		}
	}
	if c.Listen.LinkLocal != "" {
		if ip := net.ParseIP(c.Listen.LinkLocal); ip == nil || ip.To4() == nil {
			return bad("listen.linkLocal", "want an IPv4 address such as 169.254.169.254, got %q", c.Listen.LinkLocal)
		}
	}
	if c.Listen.IMDS != "" && c.Listen.IMDS == c.Listen.Control && !strings.HasSuffix(c.Listen.IMDS, ":0") {
		return bad("listen.control", "must differ from listen.imds: workloads must never reach the control API")
	}
	if c.Listen.Services != "" && (c.Listen.Services == c.Listen.Control || c.Listen.Services == c.Listen.IMDS) && !strings.HasSuffix(c.Listen.Services, ":0") {
		return bad("listen.services", "must differ from listen.imds and listen.control")
	}
	if c.Listen.ControlTokenFile == "" && !loopbackAddr(c.Listen.Control) {
		return bad("listen.controlTokenFile", "required when listen.control (%q) is not a loopback address: whoever reaches it can change every verdict; bind 127.0.0.1 or set a token file", c.Listen.Control)
	}
	if c.Faces.AppService.On() {
		if !strings.HasPrefix(c.Faces.AppService.Path, "/") || strings.HasPrefix(c.Faces.AppService.Path, "/metadata/") {
			return bad("faces.appService.path", "want an absolute path outside /metadata/, got %q", c.Faces.AppService.Path)
		}
		if c.Faces.AppService.Secret == "" {
			return bad("faces.appService.secret", "required: the IDENTITY_HEADER value clients send")
		}
	}
	if c.Faces.Arc.On() {
		if c.Faces.Arc.Addr == "" || c.Faces.Arc.SecretDir == "" || !strings.HasPrefix(c.Faces.Arc.Path, "/") {
			return bad("faces.arc", "addr, path and secretDir are required when Arc is on")
		}
	}
	for i, is := range c.Faces.Authority.Issuers {
		if !strings.HasPrefix(is.URL, "https://") && !strings.HasPrefix(is.URL, "http://") {
			return bad(fmt.Sprintf("faces.authority.issuers[%d].url", i), "want an http(s) URL, got %q", is.URL)
		}
		if is.JWKSFile != "" && is.JWKSURL != "" {
			return bad(fmt.Sprintf("faces.authority.issuers[%d]", i), "set jwksUrl or jwksFile, not both")
		}
	}
	if c.Faces.Authority.ClockSkew.Duration < 0 {
		return bad("faces.authority.clockSkew", "must not be negative")
	}
	if (c.Faces.Authority.TLSCertFile == "") != (c.Faces.Authority.TLSKeyFile == "") {
		return bad("faces.authority.tlsCertFile", "set both tlsCertFile and tlsKeyFile, or neither to generate them")
	}
	if (c.Faces.Authority.TLSCAFile == "") != (c.Faces.Authority.TLSCAKeyFile == "") {
		return bad("faces.authority.tlsCaFile", "set both tlsCaFile and tlsCaKeyFile (the CA that signed tlsCertFile), or neither")
	}
	if c.Faces.Authority.TLSCAFile != "" && c.Faces.Authority.TLSCertFile == "" {
		return bad("faces.authority.tlsCaFile", "only with tlsCertFile: a generated certificate's CA is kept by the server itself")
	}
	for i, h := range c.Faces.Authority.TLSHosts {
		if h == "" || (strings.ContainsAny(h, "/: \t") && net.ParseIP(h) == nil) {
			return bad(fmt.Sprintf("faces.authority.tlsHosts[%d]", i), "want a bare host name or IP address such as fakeimds.example or 10.0.0.5, got %q", h)
		}
	}
	ruleNames := map[string]bool{}
	for i := range c.Chaos.Faults {
		r := &c.Chaos.Faults[i]
		f := fmt.Sprintf("chaos.faults[%d]", i)
		if err := r.Validate(); err != nil {
			var re *chaos.RuleError
			if errors.As(err, &re) {
				return bad(f+"."+re.Field, "%s", re.Problem)
			}
			return bad(f, "%v", err)
		}
		if ruleNames[r.Name] {
			return bad(f+".name", "%q is used twice; rule names must be unique", r.Name)
		}
		ruleNames[r.Name] = true
	}
	if err := c.Chaos.Throttle.Validate(); err != nil {
		return bad("chaos.throttle", "%v", err)
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		return bad("log.level", "want debug, info, warn or error, got %q", c.Log.Level)
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		return bad("log.format", "want text or json, got %q", c.Log.Format)
	}
	return nil
}

// UserAssignedResourceID returns the ARM resource ID a user-assigned
// identity named name has in the host's subscription and resource group.
func (c Config) UserAssignedResourceID(name string) string {
	return fmt.Sprintf("/subscriptions/%s/resourceGroups/%s/providers/Microsoft.ManagedIdentity/userAssignedIdentities/%s",
		c.Host.SubscriptionID, c.Host.ResourceGroup, name)
}

// Identities converts the configured identities to the identity model,
// filling in derived resource IDs.
func (c *Config) Identities() (*identity.Identity, []identity.Identity) {
	conv := func(id Identity, rid string) identity.Identity {
		out := identity.Identity{Name: id.Name, ClientID: id.ClientID, ObjectID: id.ObjectID, ResourceID: rid,
			TenantID: id.TenantID, TokenLifetime: id.TokenLifetime.Duration}
		for _, f := range id.FederatedCredentials {
			out.Federated = append(out.Federated, identity.FederatedCredential{Name: f.Name, Issuer: f.Issuer, Subject: f.Subject, Audiences: f.Audiences})
		}
		return out
	}
	var sys *identity.Identity
	if c.SystemAssigned != nil {
		s := conv(*c.SystemAssigned, c.Host.ResourceID())
		if s.Name == "" {
			s.Name = "system"
		}
		sys = &s
	}
	users := make([]identity.Identity, 0, len(c.UserAssigned))
	for _, u := range c.UserAssigned {
		rid := u.ResourceID
		if rid == "" {
			rid = c.UserAssignedResourceID(u.Name)
		}
		users = append(users, conv(u, rid))
	}
	return sys, users
}

// loopbackAddr reports whether a listen address binds only a loopback
// address ("127.0.0.1:8079", "[::1]:8079", "localhost:8079").
func loopbackAddr(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
