package clients

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// Modes: where a client gets its tokens.
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
func Modes() []string { return []string{ModeIMDS, ModeAppService, ModeWorkloadIdentity} }

// IdentityKind says how an identity is selected.
type IdentityKind string

// Identity kinds.
const (
	// System is the system-assigned identity (or, as IMDS does, the only
	// user-assigned one when there is no system-assigned identity).
	System IdentityKind = "system"
	// ByClientID selects a user-assigned identity by client (app) ID.
	ByClientID IdentityKind = "client_id"
	// ByObjectID selects a user-assigned identity by object (principal) ID.
	ByObjectID IdentityKind = "object_id"
	// ByResourceID selects a user-assigned identity by Azure resource ID.
	ByResourceID IdentityKind = "resource_id"
)

// IdentityKinds lists the kinds.
func IdentityKinds() []IdentityKind {
	return []IdentityKind{System, ByClientID, ByObjectID, ByResourceID}
}

// Identity is the identity a client asks for.
type Identity struct {
	Kind  IdentityKind
	Value string
}

// String returns the identity as ParseIdentity reads it, as results
// report it and as IDHARNESS_IDENTITY carries it: "system" or
// "kind=value".
func (id Identity) String() string {
	if id.Kind == "" || id.Kind == System {
		return string(System)
	}
	return string(id.Kind) + "=" + id.Value
}

// Selects returns the identity's kind, System when unset.
func (id Identity) Selects() IdentityKind {
	if id.Kind == "" {
		return System
	}
	return id.Kind
}

// ParseIdentity reads "system" (or ""), "client_id=…", "object_id=…" or
// "resource_id=…"; "msi_res_id=" and "mi_res_id=", the names IMDS and App
// Service use, are accepted for resource_id.
func ParseIdentity(s string) (Identity, error) {
	s = strings.TrimSpace(s)
	if s == "" || s == string(System) {
		return Identity{Kind: System}, nil
	}
	k, v, ok := strings.Cut(s, "=")
	if !ok || v == "" {
		return Identity{}, fmt.Errorf("identity %q: want system, client_id=GUID, object_id=GUID or resource_id=/subscriptions/…", s)
	}
	switch k {
	case string(ByClientID), string(ByObjectID), string(ByResourceID):
		return Identity{Kind: IdentityKind(k), Value: v}, nil
	case "msi_res_id", "mi_res_id":
		return Identity{Kind: ByResourceID, Value: v}, nil
	}
	return Identity{}, fmt.Errorf("identity %q: unknown selector %q; want client_id, object_id or resource_id", s, k)
}

// Token is an access token as a client returned it.
type Token struct {
	// Value is the access token (a JWT).
	Value string
	// ExpiresOn is when the client believes the token expires, as its SDK
	// reported it; zero when the SDK reports no expiry. Checks on expiry
	// use this, not the JWT's exp claim: a client that misreads
	// expires_on believes something else than the JWT says.
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
	// GetToken returns a token for resource (e.g. https://vault.azure.net),
	// from the client's cache if it has one. It may be called
	// concurrently.
	GetToken(ctx context.Context, resource string) (Token, error)
}

// SecretReader is implemented by clients that can also read a Key Vault
// secret with their language's secrets client, on the same credential.
type SecretReader interface {
	GetSecret(ctx context.Context, vaultURL, name string) (string, error)
}

// HTTPError is a non-200 answer the raw client received; runners record
// its body.
type HTTPError struct {
	Status int
	Body   string
}

func (e *HTTPError) Error() string {
	return fmt.Sprintf("token endpoint answered %d: %s", e.Status, e.Body)
}

// Options configure an in-process (Go) client.
type Options struct {
	// Mode is ModeIMDS, ModeAppService or ModeWorkloadIdentity.
	Mode string
	// Identity is the identity to ask for.
	Identity Identity
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

// Scope turns a resource into the scope that scope-based SDKs want.
func Scope(resource string) string { return strings.TrimSuffix(resource, "/") + "/.default" }
