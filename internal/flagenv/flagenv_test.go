package flagenv

import (
	"flag"
	"strings"
	"testing"
)

func TestApply(t *testing.T) {
	env := map[string]string{"P_VAULT_URL": "http://env", "P_COUNT": "3", "P_BAD": "x"}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	url := fs.String("vault-url", "", "")
	count := fs.Int("count", 1, "")
	name := fs.String("name", "default", "")
	if err := fs.Parse([]string{"--count=5"}); err != nil {
		t.Fatal(err)
	}
	if err := Apply(fs, "P_", lookup); err != nil {
		t.Fatal(err)
	}
	if *url != "http://env" || *count != 5 || *name != "default" {
		t.Errorf("url %q count %d name %q: want env for unset flags, flags winning", *url, *count, *name)
	}
	fs2 := flag.NewFlagSet("t", flag.ContinueOnError)
	fs2.Int("bad", 0, "")
	_ = fs2.Parse(nil)
	if err := Apply(fs2, "P_", lookup); err == nil || !strings.HasPrefix(err.Error(), `P_BAD="x"`) {
		t.Errorf("error %v", err)
	}
	if Name("VAULT_", "jwks-url") != "VAULT_JWKS_URL" {
		t.Error(Name("VAULT_", "jwks-url"))
	}
}
