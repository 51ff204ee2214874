package config

import (
	"os"
	"strings"
	"testing"
)

// TestREADMEDocumentsEverySetting keeps the README's configuration
// reference true: every flag and environment variable must appear in it.
func TestREADMEDocumentsEverySetting(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	for _, s := range Settings {
		if !strings.Contains(readme, "`--"+s.Flag+"`") {
			t.Errorf("README lacks flag --%s", s.Flag)
		}
		if !strings.Contains(readme, s.Env()) {
			t.Errorf("README lacks env %s", s.Env())
		}
	}
}
