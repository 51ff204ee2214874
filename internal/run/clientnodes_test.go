package run

import (
	"slices"
	"testing"
)

// fakeNode is a node's name and role, as kind lists them.
type fakeNode struct{ name, role string }

func (n fakeNode) String() string        { return n.name }
func (n fakeNode) Role() (string, error) { return n.role, nil }

// TestClientNodes checks where a chaos run loads its client images: two
// fifths of the workers by name (rounded up), never the control plane,
// and every node of a cluster without workers.
func TestClientNodes(t *testing.T) {
	cp := fakeNode{"c-control-plane", "control-plane"}
	w := func(name string) fakeNode { return fakeNode{name, "worker"} }
	cases := []struct {
		name  string
		nodes []fakeNode
		want  []string
	}{
		{"no workers", []fakeNode{cp}, []string{"c-control-plane"}},
		{"one worker", []fakeNode{cp, w("c-worker")}, []string{"c-worker"}},
		{"three workers, listed out of order", []fakeNode{w("c-worker3"), cp, w("c-worker"), w("c-worker2")},
			[]string{"c-worker", "c-worker2"}},
		{"eight workers", []fakeNode{cp, w("c-worker"), w("c-worker2"), w("c-worker3"), w("c-worker4"), w("c-worker5"), w("c-worker6"), w("c-worker7"), w("c-worker8")},
			[]string{"c-worker", "c-worker2", "c-worker3", "c-worker4"}},
		{"ten workers", []fakeNode{cp, w("c-worker"), w("c-worker2"), w("c-worker3"), w("c-worker4"), w("c-worker5"), w("c-worker6"), w("c-worker7"), w("c-worker8"), w("c-worker9"), w("c-worker10")},
			[]string{"c-worker", "c-worker10", "c-worker2", "c-worker3"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := clientNodes(tc.nodes); !slices.Equal(got, tc.want) {
				t.Errorf("clientNodes = %v; want %v", got, tc.want)
			}
		})
	}
}
