package config

import (
	"os"
	"strings"
	"testing"
)

// TestDocsListEverySetting keeps the configuration reference true:
// every flag and environment variable must appear in it. The reference moved
// from the README to docs/fakeimds.md ("Configuration reference (fakeimds)").
func TestDocsListEverySetting(t *testing.T) {
	b, err := os.ReadFile("../../docs/fakeimds.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	for _, s := range Settings {
		if !strings.Contains(readme, "`--"+s.Flag+"`") {
			t.Errorf("docs/fakeimds.md lacks flag --%s", s.Flag)
		}
		if !strings.Contains(readme, s.Env()) {
			t.Errorf("docs/fakeimds.md lacks env %s", s.Env())
		}
	}
}
