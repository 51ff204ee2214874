// Package config defines fakeimds's configuration: the host and its
// identities, token settings, which faces are on and where they listen.
// It loads a YAML file, then environment variables, then flags (each
// overriding the one before), and validates the result so that a bad
// setting stops the server with an error naming the source, the field and
// what is wrong.
package config

import (
	"fmt"
	"strings"
	"time"

	"github.com/idharness/idharness/fakeimds/chaos"
	"github.com/idharness/idharness/fakeimds/duration"
)

// Duration is a time.Duration written as a duration string ("90s").
type Duration = duration.Duration

// Config is the whole fakeimds configuration.
type Config struct {
	// TenantID is the Azure AD tenant of identities that name none.
	TenantID string `json:"tenantId"`
	// Host describes the VM (or node) the fake metadata service runs on.
	Host Host `json:"host"`
	// SystemAssigned is the host's system-assigned identity, if it has one.
	SystemAssigned *Identity `json:"systemAssigned,omitempty"`
	// UserAssigned are the user-assigned identities attached to the host.
	UserAssigned []Identity `json:"userAssigned,omitempty"`
	// Tokens sets lifetime, caching and the signing key.
	Tokens Tokens `json:"tokens"`
	// Listen holds the listener addresses.
	Listen Listen `json:"listen"`
	// Faces turns endpoints on and off and configures them.
	Faces Faces `json:"faces"`
	// Chaos configures fault injection and throttling.
	Chaos Chaos `json:"chaos"`
	// Log sets logging.
	Log Log `json:"log"`
}

// Chaos configures fault injection: rules loaded at start, the seed of
// their randomness, and IMDS's throttling limits.
type Chaos struct {
	// Seed makes fault decisions reproducible; 0 picks one at start (logged
	// and reported by the control API so the run can be replayed).
	Seed int64 `json:"seed,omitempty"`
	// Faults are rules active from start (subject to their schedules).
	Faults []chaos.Rule `json:"faults,omitempty"`
	// Throttle sets IMDS's documented limits; on by default.
	Throttle chaos.Limits `json:"throttle"`
}

// Host is the VM's instance metadata.
type Host struct {
	Name           string            `json:"name"`
	Location       string            `json:"location"`
	ResourceGroup  string            `json:"resourceGroup"`
	SubscriptionID string            `json:"subscriptionId"`
	VMID           string            `json:"vmId"`
	VMSize         string            `json:"vmSize"`
	OSType         string            `json:"osType"`
	PrivateIP      string            `json:"privateIp"`
	Tags           map[string]string `json:"tags,omitempty"`
}

// ResourceID returns the host's ARM resource ID.
func (h Host) ResourceID() string {
	return fmt.Sprintf("/subscriptions/%s/resourceGroups/%s/providers/Microsoft.Compute/virtualMachines/%s",
		h.SubscriptionID, h.ResourceGroup, h.Name)
}

// Identity is one managed identity as configured.
type Identity struct {
	Name          string   `json:"name"`
	ClientID      string   `json:"clientId"`
	ObjectID      string   `json:"objectId"`
	ResourceID    string   `json:"resourceId"`
	TenantID      string   `json:"tenantId,omitempty"`
	TokenLifetime Duration `json:"tokenLifetime,omitempty"`
	// FederatedCredentials let workloads exchange external tokens for this
	// identity's tokens at the authority.
	FederatedCredentials []FederatedCredential `json:"federatedCredentials,omitempty"`
}

// FederatedCredential trusts tokens from Issuer with Subject and one of Audiences.
type FederatedCredential struct {
	Name      string   `json:"name,omitempty"`
	Issuer    string   `json:"issuer"`
	Subject   string   `json:"subject"`
	Audiences []string `json:"audiences,omitempty"`
}

// Tokens sets how tokens are minted and cached.
type Tokens struct {
	// Lifetime is the default token lifetime (Azure's is 24h).
	Lifetime Duration `json:"lifetime"`
	// Cache reuses a token per (identity, resource) as the real service does.
	Cache *bool `json:"cache,omitempty"`
	// RefreshBefore: a cached token with less than this left is replaced.
	RefreshBefore Duration `json:"refreshBefore"`
	// SigningKeyFile is a PEM RSA key; empty generates one at start.
	SigningKeyFile string `json:"signingKeyFile,omitempty"`
}

// CacheOn reports whether the token cache is on (the default).
func (t Tokens) CacheOn() bool { return t.Cache == nil || *t.Cache }

// Listen holds listener addresses. The control API never shares the
// metadata listener: workloads must not be able to reconfigure the fake.
type Listen struct {
	// IMDS serves the metadata faces over HTTP, and the App Service and
	// authority faces too unless Services is set.
	IMDS string `json:"imds"`
	// Services, when set, serves the App Service and authority faces
	// instead of the IMDS listener: in a cluster they are Services that
	// any pod may call, while the IMDS faces answer only at the metadata
	// address, as on Azure.
	Services string `json:"services,omitempty"`
	// Control serves the control API and /metrics.
	Control string `json:"control"`
	// ControlTokenFile holds a shared secret every control request must
	// carry (header X-Idharness-Control-Token). Required when Control is
	// not a loopback address: workloads must not change the fake.
	ControlTokenFile string `json:"controlTokenFile,omitempty"`
	// AuthorityTLS, when set, also serves the authority over HTTPS, which
	// MSAL-based clients require of an authority host.
	AuthorityTLS string `json:"authorityTls,omitempty"`
	// LinkLocal, when set (169.254.169.254), is put on the host's loopback
	// before listening, so that a fakeimds on a node's host network
	// answers at the metadata address for every pod of the node. It needs
	// CAP_NET_ADMIN. The address is held with a short lifetime that
	// fakeimds renews, so that it vanishes by itself if fakeimds is killed.
	LinkLocal string `json:"linkLocal,omitempty"`
	// ShadowMetadata lets fakeimds take the metadata address even where
	// the network serves it (a host route to it, as on an Azure VM):
	// off, fakeimds refuses to start, so that it never hides a real IMDS
	// from a node's pods by accident.
	ShadowMetadata bool `json:"shadowMetadata,omitempty"`
}

// Faces turns each endpoint family on or off.
type Faces struct {
	IMDS       Toggle     `json:"imds"`
	Instance   Toggle     `json:"instance"`
	AppService AppService `json:"appService"`
	Arc        Arc        `json:"arc"`
	Authority  Authority  `json:"authority"`
}

// Toggle is a face with nothing to configure but whether it is on.
type Toggle struct {
	Enabled *bool `json:"enabled,omitempty"`
}

// On reports whether the face is on; faces are on unless turned off.
func (t Toggle) On() bool { return t.Enabled == nil || *t.Enabled }

// AppService configures the App Service / Container Apps identity endpoint.
type AppService struct {
	Toggle
	// Path is where the endpoint answers on the IMDS listener.
	Path string `json:"path"`
	// Secret is the value clients must send in X-IDENTITY-HEADER.
	Secret string `json:"secret"`
}

// Arc configures the Azure Arc identity endpoint, which has its own port.
type Arc struct {
	Enabled *bool `json:"enabled,omitempty"`
	// Addr is the Arc listener's address (Arc's agent uses port 40342).
	Addr string `json:"addr"`
	// Path is the token path on the Arc listener.
	Path string `json:"path"`
	// SecretDir is where the server writes the challenge's secret file.
	SecretDir string `json:"secretDir"`
}

// On reports whether the Arc face is on; unlike the others it is off by
// default, since it needs its own port.
func (a Arc) On() bool { return a.Enabled != nil && *a.Enabled }

// Authority configures the Azure AD authority face used by workload identity.
type Authority struct {
	Toggle
	// Issuers are the external token issuers whose assertions are trusted
	// for federated credentials, with how to find their keys.
	Issuers []Issuer `json:"issuers,omitempty"`
	// ClockSkew is the leeway when checking an assertion's exp and nbf.
	ClockSkew Duration `json:"clockSkew"`
	// TLSCertFile and TLSKeyFile serve the HTTPS listener; empty generates
	// a CA and certificate at start, written under TLSDir.
	TLSCertFile string `json:"tlsCertFile,omitempty"`
	TLSKeyFile  string `json:"tlsKeyFile,omitempty"`
	// TLSCAFile and TLSCAKeyFile are the CA that signed TLSCertFile, for
	// a tls-certificate fault's expired certificate, which must chain to
	// the CA clients trust; a generated certificate's CA is kept instead.
	TLSCAFile    string `json:"tlsCaFile,omitempty"`
	TLSCAKeyFile string `json:"tlsCaKeyFile,omitempty"`
	// TLSDir receives the generated CA certificate (ca.crt) clients trust.
	TLSDir string `json:"tlsDir,omitempty"`
	// TLSHosts are extra host names and IP addresses the generated
	// certificate covers, besides localhost, 127.0.0.1 and ::1: the name
	// clients use as authority host, and login.microsoftonline.com when
	// MSAL's instance discovery is sent to the fake.
	TLSHosts []string `json:"tlsHosts,omitempty"`
}

// Issuer says where an external issuer's signing keys are. With neither
// JWKSURL nor JWKSFile, the keys are found through the issuer's OIDC
// discovery document.
type Issuer struct {
	URL      string `json:"url"`
	JWKSURL  string `json:"jwksUrl,omitempty"`
	JWKSFile string `json:"jwksFile,omitempty"`
	// CAFile verifies the issuer's HTTPS certificate.
	CAFile string `json:"caFile,omitempty"`
}

// Log sets logging.
type Log struct {
	// Level is debug, info, warn or error.
	Level string `json:"level"`
	// Format is text or json.
	Format string `json:"format"`
}

// Default returns the configuration fakeimds runs with when given none: a
// host with a system-assigned identity, every face but Arc on.
func Default() Config {
	return Config{
		TenantID: "72f988bf-86f1-41af-91ab-2d7cd011db47",
		Host: Host{
			Name:           "idharness-vm",
			Location:       "westeurope",
			ResourceGroup:  "idharness-rg",
			SubscriptionID: "00000000-0000-0000-0000-000000000001",
			VMID:           "7a3c6f0e-1d2b-4c5e-9f8a-0b1c2d3e4f50",
			VMSize:         "Standard_D2s_v3",
			OSType:         "Linux",
			PrivateIP:      "10.0.0.4",
		},
		SystemAssigned: &Identity{
			Name:     "system",
			ClientID: "5b1c3f1a-7d0e-4c26-9d0e-3f6a2b8c9d01",
			ObjectID: "9e8d7c6b-5a49-4382-a1b0-c9d8e7f6a501",
		},
		Tokens: Tokens{
			Lifetime:      duration.Of(24 * time.Hour),
			RefreshBefore: duration.Of(5 * time.Minute),
		},
		Listen: Listen{IMDS: ":80", Control: "127.0.0.1:8079"},
		Faces: Faces{
			AppService: AppService{Path: "/msi/token", Secret: "idharness-identity-header"},
			Arc:        Arc{Addr: "127.0.0.1:40342", Path: "/metadata/identity/oauth2/token", SecretDir: "/var/opt/azcmagent/tokens"},
			Authority:  Authority{ClockSkew: duration.Of(5 * time.Minute), TLSDir: "/var/run/fakeimds"},
		},
		Chaos: Chaos{Throttle: chaos.DefaultLimits()},
		Log:   Log{Level: "info", Format: "text"},
	}
}

// FieldError is a configuration error tied to the source and field it came from.
type FieldError struct {
	// Source is the file name, "env" or "flags".
	Source string
	// Field is the dotted path of the offending field (userAssigned[1].clientId).
	Field string
	// Problem says what is wrong and, where it helps, what to do.
	Problem string
}

func (e *FieldError) Error() string {
	var b strings.Builder
	if e.Source != "" {
		b.WriteString(e.Source)
		b.WriteString(": ")
	}
	if e.Field != "" {
		b.WriteString(e.Field)
		b.WriteString(": ")
	}
	b.WriteString(e.Problem)
	return b.String()
}
