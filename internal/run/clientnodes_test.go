package run

import (
	"slices"
	"testing"
)

// fakeNode is a node's name and role, as kind lists them.
type fakeNode struct{ name, role string }

func (n fakeNode) String() string        { return n.name }
func (n fakeNode) Role() (string, error) { return n.role, nil }

// TestClientNodes checks where a chaos run unpacks its client images:
// half the workers by name (rounded up), content only on the others,
// never the control plane, and every node of a cluster without workers.
func TestClientNodes(t *testing.T) {
	cp := fakeNode{"c-control-plane", "control-plane"}
	w := func(name string) fakeNode { return fakeNode{name, "worker"} }
	cases := []struct {
		name            string
		nodes           []fakeNode
		unpack, content []string
	}{
		{"no workers", []fakeNode{cp}, []string{"c-control-plane"}, nil},
		{"one worker", []fakeNode{cp, w("c-worker")}, []string{"c-worker"}, nil},
		{"three workers, listed out of order", []fakeNode{w("c-worker3"), cp, w("c-worker"), w("c-worker2")},
			[]string{"c-worker", "c-worker2"}, []string{"c-worker3"}},
		{"eight workers", []fakeNode{cp, w("c-worker"), w("c-worker2"), w("c-worker3"), w("c-worker4"), w("c-worker5"), w("c-worker6"), w("c-worker7"), w("c-worker8")},
			[]string{"c-worker", "c-worker2", "c-worker3", "c-worker4"}, []string{"c-worker5", "c-worker6", "c-worker7", "c-worker8"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			unpack, content := clientNodes(tc.nodes)
			if !slices.Equal(unpack, tc.unpack) || !slices.Equal(content, tc.content) {
				t.Errorf("clientNodes = %v, %v; want %v, %v", unpack, content, tc.unpack, tc.content)
			}
		})
	}
}
