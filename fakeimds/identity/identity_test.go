package identity

import (
	"errors"
	"testing"
)

var (
	sys = Identity{Name: "sys", ClientID: "AAAAAAAA-0000-4000-8000-000000000001", ObjectID: "aaaaaaaa-0000-4000-8000-000000000002", ResourceID: "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm"}
	ua  = Identity{Name: "a", ClientID: "bbbbbbbb-0000-4000-8000-000000000001", ObjectID: "bbbbbbbb-0000-4000-8000-000000000002", ResourceID: "/subscriptions/s/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/a"}
	ub  = Identity{Name: "b", ClientID: "cccccccc-0000-4000-8000-000000000001", ObjectID: "cccccccc-0000-4000-8000-000000000002", ResourceID: "/subscriptions/s/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/b"}
)

func TestResolve(t *testing.T) {
	cases := []struct {
		name   string
		system *Identity
		users  []Identity
		sel    Selector
		want   string // client ID, or "" for an error
		err    error
	}{
		{"system by default", &sys, []Identity{ua, ub}, Selector{}, sys.ClientID, nil},
		{"only user-assigned by default", nil, []Identity{ua}, Selector{}, ua.ClientID, nil},
		{"ambiguous", nil, []Identity{ua, ub}, Selector{}, "", ErrAmbiguous},
		{"no identity", nil, nil, Selector{}, "", ErrNotFound},
		{"by client id, any case", &sys, []Identity{ua}, Selector{ByClientID, "BBBBBBBB-0000-4000-8000-000000000001"}, ua.ClientID, nil},
		{"by object id", &sys, []Identity{ua, ub}, Selector{ByObjectID, ub.ObjectID}, ub.ClientID, nil},
		{"by resource id, any case", &sys, []Identity{ua, ub}, Selector{ByResourceID, "/SUBSCRIPTIONS/s/resourcegroups/RG/providers/microsoft.managedidentity/userassignedidentities/b"}, ub.ClientID, nil},
		{"system by client id", &sys, []Identity{ua}, Selector{ByClientID, sys.ClientID}, sys.ClientID, nil},
		{"system by resource id", &sys, nil, Selector{ByResourceID, sys.ResourceID}, sys.ClientID, nil},
		{"unknown client id", &sys, []Identity{ua}, Selector{ByClientID, "dddddddd-0000-4000-8000-000000000001"}, "", ErrNotFound},
		{"object id given as client id", &sys, []Identity{ua}, Selector{ByClientID, ua.ObjectID}, "", ErrNotFound},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, err := NewStore(tc.system, tc.users)
			if err != nil {
				t.Fatal(err)
			}
			got, err := s.Resolve(tc.sel)
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("err %v, want %v", err, tc.err)
				}
				return
			}
			if err != nil || got.ClientID != tc.want {
				t.Fatalf("got %q, %v; want %q", got.ClientID, err, tc.want)
			}
		})
	}
}

func TestAttachDetachUpdate(t *testing.T) {
	s, err := NewStore(&sys, []Identity{ua})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Attach(ua); err == nil {
		t.Error("duplicate client ID attached")
	}
	dupObj := ub
	dupObj.ObjectID = ua.ObjectID
	if err := s.Attach(dupObj); err == nil {
		t.Error("duplicate object ID attached")
	}
	clash := ub
	clash.ClientID = sys.ClientID
	if err := s.Attach(clash); err == nil {
		t.Error("system-assigned client ID attached as user-assigned")
	}
	if err := s.Attach(ub); err != nil {
		t.Fatal(err)
	}
	if got := s.List(); len(got) != 3 || !got[0].System || got[1].Name != "a" || got[2].Name != "b" {
		t.Fatalf("List: %+v", got)
	}
	if _, err := s.Detach(Selector{ByResourceID, ua.ResourceID}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Resolve(Selector{ByObjectID, ua.ObjectID}); !errors.Is(err, ErrNotFound) {
		t.Errorf("detached identity still resolves by object ID: %v", err)
	}
	if _, err := s.Detach(Selector{ByClientID, sys.ClientID}); !errors.Is(err, ErrNotFound) {
		t.Errorf("detach of the system identity: %v", err)
	}
	up, err := s.Update(Selector{ByClientID, ub.ClientID}, func(id *Identity) { id.TokenLifetime = 42; id.ClientID = "changed" })
	if err != nil || up.TokenLifetime != 42 || up.ClientID != ub.ClientID {
		t.Fatalf("Update: %+v %v", up, err)
	}
	s.SetSystem(nil)
	if got, _ := s.Resolve(Selector{}); got.ClientID != ub.ClientID {
		t.Errorf("without system identity the only user-assigned one should be the default, got %q", got.ClientID)
	}
}

// TestGeneration checks that every change to a store's identities
// changes its generation, and reads do not.
func TestGeneration(t *testing.T) {
	cases := []struct {
		name    string
		op      func(s *Store)
		changes bool
	}{
		{"Replace", func(s *Store) { _ = s.Replace(&sys, []Identity{ua}) }, true},
		{"Attach", func(s *Store) { _ = s.Attach(ub) }, true},
		{"Detach", func(s *Store) { _, _ = s.Detach(Selector{ByClientID, ua.ClientID}) }, true},
		{"SetSystem", func(s *Store) { s.SetSystem(nil) }, true},
		{"Update", func(s *Store) {
			_, _ = s.Update(Selector{ByClientID, ua.ClientID}, func(i *Identity) { i.TenantID = "t2" })
		}, true},
		{"reads", func(s *Store) {
			_, _ = s.Resolve(Selector{})
			_, _ = s.Lookup(ua.ClientID)
			_ = s.List()
		}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, err := NewStore(&sys, []Identity{ua})
			if err != nil {
				t.Fatal(err)
			}
			before := s.Generation()
			tc.op(s)
			if changed := s.Generation() != before; changed != tc.changes {
				t.Errorf("generation changed %v, want %v", changed, tc.changes)
			}
		})
	}
}
