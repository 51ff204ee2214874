package framework

import (
	"testing"

	"github.com/onsi/ginkgo/v2/types"
)

func TestSelected(t *testing.T) {
	text := "chaos: scenarios " + ChaosText("IDH-CHAOS-0002", MUST, "a client that retries MUST get its token")
	labels := ChaosLabels(MUST, []string{"status-410", "slow"})
	cases := []struct {
		name               string
		label, focus, skip string
		want               bool
	}{
		{"no filter", "", "", "", true},
		{"the chaos suite's filter", "chaos && !conformance", "", "", true},
		{"conformance suite", "conformance", "", "", false},
		{"label excluded", "chaos && !slow", "", "", false},
		{"level", "SHOULD", "", "", false},
		{"focus on the ID", "", "IDH-CHAOS-0002", "", true},
		{"focus on another ID", "", "IDH-CHAOS-0003", "", false},
		{"focus on the container", "", "^chaos: scenarios", "", true},
		{"skip", "", "", "0002", false},
		{"focus and filter", "chaos", "IDH-CHAOS-000[0-9]", "", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := types.SuiteConfig{LabelFilter: tc.label}
			if tc.focus != "" {
				cfg.FocusStrings = []string{tc.focus}
			}
			if tc.skip != "" {
				cfg.SkipStrings = []string{tc.skip}
			}
			if got := selectedBy(cfg, text, labels); got != tc.want {
				t.Errorf("Selected = %v, want %v", got, tc.want)
			}
		})
	}
}
