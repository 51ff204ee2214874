package run

import (
	"reflect"
	"strings"
	"testing"

	"github.com/idharness/idharness/clients"
	_ "github.com/idharness/idharness/clients/all"
)

func TestSelectPrograms(t *testing.T) {
	reg, err := clients.Builtin()
	if err != nil {
		t.Fatal(err)
	}
	var all, def []string
	for _, p := range reg.Programs() {
		if len(p.Command) == 0 {
			continue
		}
		all = append(all, p.Name)
		if p.Image.OnRequest == "" {
			def = append(def, p.Name)
		}
	}
	keys := func(m map[string]bool) []string {
		var out []string
		for _, p := range reg.Programs() {
			if m[p.Name] {
				out = append(out, p.Name)
			}
		}
		return out
	}
	for _, tc := range []struct {
		names []string
		want  []string
		err   string
	}{
		{nil, def, ""},
		{[]string{"all"}, all, ""},
		{[]string{"none"}, nil, ""},
		{[]string{"az-cli"}, []string{"az-cli"}, ""},
		{[]string{"cobol"}, nil, `unknown program "cobol"`},
		{[]string{"go-raw"}, nil, `unknown program "go-raw"`},
	} {
		got, err := selectPrograms(reg, tc.names)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%v: error %v, want %q", tc.names, err, tc.err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(keys(got), tc.want) {
			t.Errorf("%v: %v %v, want %v", tc.names, keys(got), err, tc.want)
		}
	}
	if len(def) == len(all) {
		t.Errorf("every program is built by default; the az CLI's 1.6 GB image should be on request")
	}
}
