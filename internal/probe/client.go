package probe

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"

	"github.com/idharness/idharness/clients"
	_ "github.com/idharness/idharness/clients/all" // the Go clients the probe runs in process
	"github.com/idharness/idharness/pkg/api/workloadidentity"
)

// The identity contract is the client registry's; these names keep the
// probe's callers short.
const (
	ModeIMDS             = clients.ModeIMDS
	ModeAppService       = clients.ModeAppService
	ModeWorkloadIdentity = clients.ModeWorkloadIdentity

	System       = clients.System
	ByClientID   = clients.ByClientID
	ByObjectID   = clients.ByObjectID
	ByResourceID = clients.ByResourceID
)

// Identity and friends are the registry's.
type (
	Identity     = clients.Identity
	IdentityKind = clients.IdentityKind
	Client       = clients.Client
	Token        = clients.Token
	HTTPError    = clients.HTTPError
)

// ParseIdentity reads an identity as clients.ParseIdentity does.
func ParseIdentity(s string) (Identity, error) { return clients.ParseIdentity(s) }

// Names of the Go clients the suites ask for by name.
const (
	ClientAzidentityMI      = "azidentity-mi"
	ClientAzidentityDefault = "azidentity-default"
	ClientAzidentityWI      = "azidentity-wi"
	ClientMSALMI            = "msal-mi"
	ClientMSALWI            = "msal-wi"
	ClientRaw               = "raw"
)

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

// clientOptions returns what a Go client is built from.
func (o Options) clientOptions() clients.Options {
	return clients.Options{Mode: o.Mode, Identity: o.Identity, DisableInstanceDiscovery: o.DisableInstanceDiscovery,
		RawNoMetadata: o.RawNoMetadata, RawForwardedFor: o.RawForwardedFor}
}

// registry returns the client registry; it cannot fail for the shipped
// declarations (clients' own tests load it).
func registry() *clients.Registry {
	r, err := clients.Builtin()
	if err != nil {
		panic(err)
	}
	return r
}

// Modes lists the modes.
func Modes() []string { return clients.Modes() }

// AllClients lists the clients the probe runs in process: the Go clients.
func AllClients() []string {
	var out []string
	for _, s := range registry().Specs() {
		if s.New != nil {
			out = append(out, s.Name)
		}
	}
	return out
}

// DefaultClients returns the Go clients that support mode and can ask
// for id, as the registry declares them.
func DefaultClients(mode string, id Identity) []string {
	var out []string
	for _, s := range registry().For(mode, id.Selects(), "go") {
		out = append(out, s.Name)
	}
	return out
}

// ErrUnknownClient is returned by NewClient for a name the probe cannot
// run in process.
var ErrUnknownClient = errors.New("unknown client")

// NewClient returns the named client. Its HTTP requests go through hc,
// whose transport the runner counts. Errors concern configuration the
// client cannot work with (an identity kind it cannot express, missing
// environment); they say what to set.
func NewClient(name string, o Options, hc *http.Client) (Client, error) {
	if !slices.Contains(Modes(), o.Mode) {
		return nil, fmt.Errorf("mode %q: want one of %s", o.Mode, strings.Join(Modes(), ", "))
	}
	spec, err := registry().Lookup(name)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnknownClient, err)
	}
	if spec.New == nil {
		return nil, fmt.Errorf("%w %q: it is a %s client; the probe runs only the Go clients (%s) in process", ErrUnknownClient, name, spec.Language(), strings.Join(AllClients(), ", "))
	}
	if err := checkModeEnv(o); err != nil {
		return nil, err
	}
	return spec.New(o.clientOptions(), hc)
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
		for _, k := range []string{workloadidentity.EnvTenantID, workloadidentity.EnvTokenFile, workloadidentity.EnvAuthorityHost} {
			if os.Getenv(k) == "" {
				return fmt.Errorf("mode workload-identity needs %s set, as the workload identity webhook sets it", k)
			}
		}
		switch o.Identity.Kind {
		case ByObjectID, ByResourceID:
			return fmt.Errorf("workload identity selects the identity by client ID only, not by %s: use --identity client_id=… or AZURE_CLIENT_ID", o.Identity.Kind)
		case ByClientID:
		default:
			if os.Getenv(workloadidentity.EnvClientID) == "" {
				return errors.New("mode workload-identity needs AZURE_CLIENT_ID set, or --identity client_id=…")
			}
		}
	}
	return nil
}
