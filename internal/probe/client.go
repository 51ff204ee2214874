package probe

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"
)

// Modes: where the clients get their tokens.
const (
	// ModeIMDS: the instance metadata service at 169.254.169.254.
	ModeIMDS = "imds"
	// ModeAppService: the App Service / Container Apps endpoint named by
	// IDENTITY_ENDPOINT and IDENTITY_HEADER.
	ModeAppService = "appservice"
	// ModeWorkloadIdentity: a token exchange at the authority with the
	// projected service account token, as the workload identity webhook
	// sets up (AZURE_CLIENT_ID, AZURE_TENANT_ID, AZURE_FEDERATED_TOKEN_FILE,
	// AZURE_AUTHORITY_HOST).
	ModeWorkloadIdentity = "workload-identity"
)

// Modes lists the modes.
var Modes = []string{ModeIMDS, ModeAppService, ModeWorkloadIdentity}

// Client names.
const (
	ClientAzidentityMI      = "azidentity-mi"
	ClientAzidentityDefault = "azidentity-default"
	ClientAzidentityWI      = "azidentity-wi"
	ClientMSALMI            = "msal-mi"
	ClientMSALWI            = "msal-wi"
	ClientRaw               = "raw"
)

// Token is an access token as a client returned it.
type Token struct {
	// Value is the access token (a JWT).
	Value string
	// ExpiresOn is when the client believes the token expires.
	ExpiresOn time.Time
	// Wire holds the raw client's wire checks; nil for SDK clients.
	Wire *Wire
}

// Wire is what the raw client saw on the wire.
type Wire struct {
	// FieldTypes maps each field of the token response to its JSON type.
	FieldTypes map[string]string
	// ResourceEcho is the response's resource field.
	ResourceEcho string
}

// Client acquires tokens with one real client library.
type Client interface {
	// Name returns the client's name, e.g. "msal-mi".
	Name() string
	// GetToken returns a token for resource (e.g. https://vault.azure.net),
	// from the client's cache if it has one.
	GetToken(ctx context.Context, resource string) (Token, error)
}

// HTTPError is a non-200 answer the raw client received; the runner puts
// its body in Result.Body.
type HTTPError struct {
	Status int
	Body   string
}

func (e *HTTPError) Error() string {
	return fmt.Sprintf("token endpoint answered %d: %s", e.Status, e.Body)
}

// Options configure the clients.
type Options struct {
	// Mode is ModeIMDS, ModeAppService or ModeWorkloadIdentity.
	Mode string
	// Identity is the identity to ask for.
	Identity Identity
	// IMDSAddr, when set, makes the transport dial this HOST:PORT instead
	// of 169.254.169.254:80. Tests use it; in a cluster the real address
	// answers.
	IMDSAddr string
	// CAFile is a PEM bundle trusted for HTTPS in addition to the system
	// roots (the fake authority's generated CA). SSL_CERT_FILE also works.
	CAFile string
	// DisableInstanceDiscovery turns off the workload identity clients'
	// instance discovery request to login.microsoftonline.com.
	DisableInstanceDiscovery bool
	// RawNoMetadata makes the raw client omit the Metadata header (IMDS
	// must answer 400).
	RawNoMetadata bool
	// RawForwardedFor, when set, makes the raw client send this
	// X-Forwarded-For value (IMDS must answer 400).
	RawForwardedFor string
}

// clientsByMode lists, in order, the clients that apply to each mode.
var clientsByMode = map[string][]string{
	ModeIMDS:             {ClientAzidentityMI, ClientAzidentityDefault, ClientMSALMI, ClientRaw},
	ModeAppService:       {ClientAzidentityMI, ClientAzidentityDefault, ClientMSALMI, ClientRaw},
	ModeWorkloadIdentity: {ClientAzidentityWI, ClientAzidentityDefault, ClientMSALWI},
}

// DefaultClients returns the clients that apply to mode and can ask for
// id: azidentity-default selects a user-assigned identity only by client
// ID, so it is left out for object and resource IDs.
func DefaultClients(mode string, id Identity) []string {
	var out []string
	for _, c := range clientsByMode[mode] {
		if c == ClientAzidentityDefault && mode != ModeWorkloadIdentity && (id.Kind == ByObjectID || id.Kind == ByResourceID) {
			continue
		}
		out = append(out, c)
	}
	return out
}

// AllClients lists every client name.
var AllClients = []string{ClientAzidentityMI, ClientAzidentityDefault, ClientAzidentityWI, ClientMSALMI, ClientMSALWI, ClientRaw}

// ErrUnknownClient is returned by NewClient for a name not in AllClients.
var ErrUnknownClient = errors.New("unknown client")

// NewClient returns the named client. Its HTTP requests go through hc,
// whose transport the runner counts. Errors concern configuration the
// client cannot work with (an identity kind it cannot express, missing
// environment); they say what to set.
func NewClient(name string, o Options, hc *http.Client) (Client, error) {
	if !slices.Contains(Modes, o.Mode) {
		return nil, fmt.Errorf("mode %q: want one of %s", o.Mode, strings.Join(Modes, ", "))
	}
	if err := checkModeEnv(o); err != nil {
		return nil, err
	}
	switch name {
	case ClientAzidentityMI:
		return newAzidentityMI(o, hc)
	case ClientAzidentityDefault:
		return newAzidentityDefault(o, hc)
	case ClientAzidentityWI:
		return newAzidentityWI(o, hc)
	case ClientMSALMI:
		return newMSALMI(o, hc)
	case ClientMSALWI:
		return newMSALWI(o, hc)
	case ClientRaw:
		return newRaw(o, hc)
	}
	return nil, fmt.Errorf("%w %q: want one of %s", ErrUnknownClient, name, strings.Join(AllClients, ", "))
}

// checkModeEnv refuses an environment that would make the SDKs use
// another source than the mode names: the SDKs pick the source from
// environment variables (which is why the clients read the process
// environment, not a copy), so a stray IDENTITY_ENDPOINT in IMDS mode
// would silently test App Service instead.
func checkModeEnv(o Options) error {
	switch o.Mode {
	case ModeIMDS:
		for _, k := range []string{"IDENTITY_ENDPOINT", "MSI_ENDPOINT", "IMDS_ENDPOINT"} {
			if os.Getenv(k) != "" {
				return fmt.Errorf("mode imds but %s is set, which makes the SDKs use another managed identity source: unset it or use --mode appservice", k)
			}
		}
	case ModeAppService:
		if os.Getenv("IDENTITY_ENDPOINT") == "" || os.Getenv("IDENTITY_HEADER") == "" {
			return errors.New("mode appservice needs IDENTITY_ENDPOINT and IDENTITY_HEADER set, as App Service sets them")
		}
	case ModeWorkloadIdentity:
		for _, k := range []string{"AZURE_TENANT_ID", "AZURE_FEDERATED_TOKEN_FILE", "AZURE_AUTHORITY_HOST"} {
			if os.Getenv(k) == "" {
				return fmt.Errorf("mode workload-identity needs %s set, as the workload identity webhook sets it", k)
			}
		}
		switch o.Identity.Kind {
		case ByObjectID, ByResourceID:
			return fmt.Errorf("workload identity selects the identity by client ID only, not by %s: use --identity client_id=… or AZURE_CLIENT_ID", o.Identity.Kind)
		case ByClientID:
		default:
			if os.Getenv("AZURE_CLIENT_ID") == "" {
				return errors.New("mode workload-identity needs AZURE_CLIENT_ID set, or --identity client_id=…")
			}
		}
	}
	return nil
}

// scope turns a resource into the scope that scope-based clients want.
func scope(resource string) string { return strings.TrimSuffix(resource, "/") + "/.default" }
