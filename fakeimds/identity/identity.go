// Package identity models the managed identities a fake Azure host carries:
// one optional system-assigned identity and any number of user-assigned ones,
// and resolves a token request's selector to exactly one of them the way the
// real Instance Metadata Service does.
package identity

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Identity is one managed identity: a service principal that Azure AD knows
// by client (application) ID and object (principal) ID, and that Azure
// Resource Manager knows by resource ID.
type Identity struct {
	// Name is a human label, used in logs, the journal and metrics.
	Name string `json:"name"`
	// ClientID is the application ID clients select with client_id.
	ClientID string `json:"clientId"`
	// ObjectID is the principal ID clients select with object_id or principal_id.
	ObjectID string `json:"objectId"`
	// ResourceID is the ARM resource ID clients select with msi_res_id or mi_res_id.
	// For a system-assigned identity it is the host's own resource ID.
	ResourceID string `json:"resourceId"`
	// TenantID is the Azure AD tenant the identity lives in.
	TenantID string `json:"tenantId"`
	// System is true for the host's system-assigned identity.
	System bool `json:"system,omitempty"`
	// TokenLifetime overrides the server-wide token lifetime when non-zero.
	TokenLifetime time.Duration `json:"tokenLifetime,omitempty"`
	// Federated lists the federated credentials that let a workload exchange
	// an external token for this identity's token at the authority.
	Federated []FederatedCredential `json:"federatedCredentials,omitempty"`
}

// FederatedCredential is a trust between an identity and an external token
// issuer, as Azure AD's federated identity credentials define it.
type FederatedCredential struct {
	// Name labels the credential.
	Name string `json:"name,omitempty"`
	// Issuer is the external issuer URL; it must equal the assertion's iss.
	Issuer string `json:"issuer"`
	// Subject must equal the assertion's sub.
	Subject string `json:"subject"`
	// Audiences must contain one of the assertion's aud values.
	Audiences []string `json:"audiences,omitempty"`
}

// DefaultFederatedAudience is the audience Azure AD expects in workload
// identity assertions when a federated credential names none.
const DefaultFederatedAudience = "api://AzureADTokenExchange"

// Key returns the identity's stable key: its lower-cased client ID.
func (id Identity) Key() string { return strings.ToLower(id.ClientID) }

// Kind says which selector a token request used.
type Kind int

// The selector kinds. The zero value asks for the default identity.
const (
	ByDefault Kind = iota
	ByClientID
	ByObjectID
	ByResourceID
)

// String returns the kind's query parameter name as clients send it.
func (k Kind) String() string {
	switch k {
	case ByClientID:
		return "client_id"
	case ByObjectID:
		return "object_id"
	case ByResourceID:
		return "msi_res_id"
	default:
		return "default"
	}
}

// Selector is what a token request asks for.
type Selector struct {
	Kind  Kind
	Value string
}

// String renders the selector for logs and the journal.
func (s Selector) String() string {
	if s.Kind == ByDefault {
		return "default"
	}
	return s.Kind.String() + "=" + s.Value
}

// The resolution failures, matched with errors.Is. Each maps to the real
// service's answer in the face that serves it.
var (
	// ErrNotFound means no attached identity matches the selector, or the
	// host has no identity at all.
	ErrNotFound = errors.New("identity not found")
	// ErrAmbiguous means the request named no identity, the host has no
	// system-assigned identity and more than one user-assigned identity.
	ErrAmbiguous = errors.New("multiple user assigned identities exist")
)

// Store holds a host's attached identities. It is safe for concurrent use;
// attach and detach take effect for the next request.
type Store struct {
	// gen counts the changes to the identities (Generation).
	gen    atomic.Uint64
	mu     sync.RWMutex
	system *Identity
	users  map[string]Identity // by Key()
	// indexes for the selectors, all keys lower-cased since Azure compares
	// GUIDs and ARM resource IDs case-insensitively.
	byObject   map[string]string
	byResource map[string]string
}

// NewStore returns a store holding the given identities.
func NewStore(system *Identity, users []Identity) (*Store, error) {
	s := &Store{}
	if err := s.Replace(system, users); err != nil {
		return nil, err
	}
	return s, nil
}

// Generation changes whenever the identities may have changed (Replace,
// Attach, Detach, SetSystem, Update): what Resolve returned under one
// generation it returns still while the generation is the same.
func (s *Store) Generation() uint64 { return s.gen.Load() }

// Replace swaps the whole set of identities at once.
func (s *Store) Replace(system *Identity, users []Identity) error {
	n := &Store{users: map[string]Identity{}, byObject: map[string]string{}, byResource: map[string]string{}}
	if system != nil {
		sys := *system
		sys.System = true
		n.system = &sys
	}
	for _, u := range users {
		if err := n.attach(u); err != nil {
			return err
		}
	}
	s.mu.Lock()
	s.system, s.users, s.byObject, s.byResource = n.system, n.users, n.byObject, n.byResource
	s.gen.Add(1)
	s.mu.Unlock()
	return nil
}

func (s *Store) attach(u Identity) error {
	u.System = false
	if u.ClientID == "" {
		return fmt.Errorf("attach identity %q: clientId is required", u.Name)
	}
	k := u.Key()
	if _, dup := s.users[k]; dup {
		return fmt.Errorf("attach identity %q: client ID %s is already attached", u.Name, u.ClientID)
	}
	if s.system != nil && strings.EqualFold(s.system.ClientID, u.ClientID) {
		return fmt.Errorf("attach identity %q: client ID %s belongs to the system-assigned identity", u.Name, u.ClientID)
	}
	if o := strings.ToLower(u.ObjectID); o != "" {
		if _, dup := s.byObject[o]; dup {
			return fmt.Errorf("attach identity %q: object ID %s is already attached", u.Name, u.ObjectID)
		}
		s.byObject[o] = k
	}
	if r := strings.ToLower(u.ResourceID); r != "" {
		if _, dup := s.byResource[r]; dup {
			return fmt.Errorf("attach identity %q: resource ID %s is already attached", u.Name, u.ResourceID)
		}
		s.byResource[r] = k
	}
	s.users[k] = u
	return nil
}

// Attach adds a user-assigned identity, as assigning it to the VM does.
func (s *Store) Attach(u Identity) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	defer s.gen.Add(1)
	return s.attach(u)
}

// Detach removes the user-assigned identity that sel names (by client ID,
// object ID or resource ID) and returns it.
func (s *Store) Detach(sel Selector) (Identity, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	defer s.gen.Add(1)
	k, ok := s.userKey(sel)
	if !ok {
		return Identity{}, fmt.Errorf("detach %s: %w", sel, ErrNotFound)
	}
	u := s.users[k]
	delete(s.users, k)
	delete(s.byObject, strings.ToLower(u.ObjectID))
	delete(s.byResource, strings.ToLower(u.ResourceID))
	return u, nil
}

// SetSystem sets or (with nil) removes the system-assigned identity.
func (s *Store) SetSystem(sys *Identity) {
	s.mu.Lock()
	defer s.mu.Unlock()
	defer s.gen.Add(1)
	if sys == nil {
		s.system = nil
		return
	}
	c := *sys
	c.System = true
	s.system = &c
}

// Update applies fn to the identity sel names and stores the result; the
// identity's selectors cannot change.
func (s *Store) Update(sel Selector, fn func(*Identity)) (Identity, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	defer s.gen.Add(1)
	if s.system != nil && s.matchesSystem(sel) {
		c := *s.system
		fn(&c)
		c.ClientID, c.ObjectID, c.ResourceID, c.System = s.system.ClientID, s.system.ObjectID, s.system.ResourceID, true
		s.system = &c
		return c, nil
	}
	k, ok := s.userKey(sel)
	if !ok {
		return Identity{}, fmt.Errorf("update %s: %w", sel, ErrNotFound)
	}
	old := s.users[k]
	c := old
	fn(&c)
	c.ClientID, c.ObjectID, c.ResourceID, c.System = old.ClientID, old.ObjectID, old.ResourceID, false
	s.users[k] = c
	return c, nil
}

func (s *Store) matchesSystem(sel Selector) bool {
	v := sel.Value
	switch sel.Kind {
	case ByDefault:
		return true
	case ByClientID:
		return strings.EqualFold(s.system.ClientID, v)
	case ByObjectID:
		return s.system.ObjectID != "" && strings.EqualFold(s.system.ObjectID, v)
	case ByResourceID:
		return s.system.ResourceID != "" && strings.EqualFold(s.system.ResourceID, v)
	}
	return false
}

func (s *Store) userKey(sel Selector) (string, bool) {
	v := strings.ToLower(sel.Value)
	var k string
	switch sel.Kind {
	case ByClientID:
		k = v
	case ByObjectID:
		k = s.byObject[v]
	case ByResourceID:
		k = s.byResource[v]
	default:
		return "", false
	}
	_, ok := s.users[k]
	return k, ok
}

// Resolve returns the identity a token request with sel gets, following
// IMDS: a selector must match an attached identity; no selector means the
// system-assigned identity, or the only user-assigned one when there is no
// system-assigned identity.
func (s *Store) Resolve(sel Selector) (Identity, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if sel.Kind == ByDefault {
		switch {
		case s.system != nil:
			return *s.system, nil
		case len(s.users) == 1:
			for _, u := range s.users {
				return u, nil
			}
		case len(s.users) > 1:
			return Identity{}, ErrAmbiguous
		}
		return Identity{}, ErrNotFound
	}
	if s.system != nil && s.matchesSystem(sel) {
		return *s.system, nil
	}
	if k, ok := s.userKey(sel); ok {
		return s.users[k], nil
	}
	return Identity{}, ErrNotFound
}

// Lookup finds an identity, system- or user-assigned, by client ID alone; the
// authority uses it since token exchanges name the application.
func (s *Store) Lookup(clientID string) (Identity, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.system != nil && strings.EqualFold(s.system.ClientID, clientID) {
		return *s.system, true
	}
	u, ok := s.users[strings.ToLower(clientID)]
	return u, ok
}

// List returns the system-assigned identity (if any) followed by the
// user-assigned ones ordered by name then client ID.
func (s *Store) List() []Identity {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]Identity, 0, len(s.users)+1)
	for _, u := range s.users {
		out = append(out, u)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Name != out[j].Name {
			return out[i].Name < out[j].Name
		}
		return out[i].Key() < out[j].Key()
	})
	if s.system != nil {
		out = append([]Identity{*s.system}, out...)
	}
	return out
}
