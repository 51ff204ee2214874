package nodeagent

import (
	"bytes"
	"net"
	"testing"

	"github.com/google/nftables/expr"
)

// TestRedirectExprs checks the rule's matches and target without touching
// the machine's netfilter (Install needs a node's network namespace).
func TestRedirectExprs(t *testing.T) {
	tests := []struct {
		name    string
		rd      Redirect
		wantErr bool
	}{
		{"IPv4", Redirect{MetadataIP: net.ParseIP("169.254.169.254"), MetadataPort: 80, AgentIP: net.ParseIP("172.18.0.3"), AgentPort: 2579}, false},
		{"IPv6 agent address", Redirect{MetadataIP: net.ParseIP("169.254.169.254"), MetadataPort: 80, AgentIP: net.ParseIP("fd00::3"), AgentPort: 2579}, true},
		{"no agent address", Redirect{MetadataIP: net.ParseIP("169.254.169.254"), MetadataPort: 80, AgentPort: 2579}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			exprs, err := tt.rd.Exprs()
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			var cmps [][]byte
			var nat *expr.NAT
			var imms [][]byte
			for _, e := range exprs {
				switch e := e.(type) {
				case *expr.Cmp:
					cmps = append(cmps, e.Data)
				case *expr.Immediate:
					imms = append(imms, e.Data)
				case *expr.NAT:
					nat = e
				}
			}
			want := [][]byte{[]byte("lo\x00"), {169, 254, 169, 254}, {6}, {0, 80}}
			if len(cmps) != len(want) {
				t.Fatalf("%d matches, want %d", len(cmps), len(want))
			}
			for i, w := range want {
				if !bytes.HasPrefix(cmps[i], w) {
					t.Errorf("match %d: %v, want %v", i, cmps[i], w)
				}
			}
			if nat == nil || nat.Type != expr.NATTypeDestNAT {
				t.Fatal("no DNAT")
			}
			if len(imms) != 2 || !bytes.Equal(imms[0], []byte{172, 18, 0, 3}) || !bytes.Equal(imms[1], []byte{0x0a, 0x13}) {
				t.Errorf("DNAT to %v, want 172.18.0.3:2579", imms)
			}
		})
	}
}
