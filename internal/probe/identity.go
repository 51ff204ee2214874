package probe

import (
	"fmt"
	"strings"
)

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

// Identity is the identity a probe asks for.
type Identity struct {
	Kind  IdentityKind
	Value string
}

// String returns the identity as ParseIdentity reads it and as
// Result.IdentityAsked reports it: "system" or "kind=value".
func (id Identity) String() string {
	if id.Kind == "" || id.Kind == System {
		return string(System)
	}
	return string(id.Kind) + "=" + id.Value
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
