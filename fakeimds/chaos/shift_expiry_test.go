package chaos

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/idharness/idharness/fakeimds/duration"
)

func TestShiftExpiry(t *testing.T) {
	for _, tc := range []struct {
		name, body, want string
		by               time.Duration
	}{
		{"IMDS strings", `{"access_token":"x","expires_in":"86400","expires_on":"1767225600","resource":"r"}`,
			`{"access_token":"x","expires_in":"79200","expires_on":"1767218400","resource":"r"}`, -2 * time.Hour},
		{"numbers stay numbers", `{"expires_in":3600,"expires_on":1767225600,"ext_expires_in":3600}`,
			`{"expires_in":3660,"expires_on":1767225660,"ext_expires_in":3660}`, time.Minute},
		{"no expiry fields", `{"access_token":"x"}`, `{"access_token":"x"}`, time.Hour},
		{"not JSON", `<html>`, `<html>`, time.Hour},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &ShiftExpiry{By: duration.Of(tc.by)}
			if err := f.Validate(); err != nil {
				t.Fatal(err)
			}
			var fx Effects
			f.Apply(&fx, nil)
			got := string(fx.BodyEdits[0]([]byte(tc.body)))
			if tc.want != "<html>" && !jsonEqual(t, got, tc.want) || tc.want == "<html>" && got != tc.want {
				t.Errorf("got %s, want %s", got, tc.want)
			}
		})
	}
	for _, bad := range []time.Duration{0, 1500 * time.Millisecond} {
		if (&ShiftExpiry{By: duration.Of(bad)}).Validate() == nil {
			t.Errorf("by %v accepted", bad)
		}
	}
}

func jsonEqual(t *testing.T, a, b string) bool {
	t.Helper()
	var x, y any
	if err := json.Unmarshal([]byte(a), &x); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(b), &y); err != nil {
		t.Fatal(err)
	}
	xb, _ := json.Marshal(x)
	yb, _ := json.Marshal(y)
	return string(xb) == string(yb)
}
