package deploy

import (
	"testing"

	discoveryv1 "k8s.io/api/discovery/v1"
)

// TestReadyEndpoints: a Service is served once one of its endpoints is
// ready; none, or only unready ones, is not.
func TestReadyEndpoints(t *testing.T) {
	yes, no := true, false
	slice := func(ready ...*bool) discoveryv1.EndpointSlice {
		var s discoveryv1.EndpointSlice
		for _, r := range ready {
			s.Endpoints = append(s.Endpoints, discoveryv1.Endpoint{Conditions: discoveryv1.EndpointConditions{Ready: r}})
		}
		return s
	}
	for _, tc := range []struct {
		name   string
		slices []discoveryv1.EndpointSlice
		want   bool
		msg    string
	}{
		{"no slice", nil, false, "0/0 endpoints ready"},
		{"an empty slice", []discoveryv1.EndpointSlice{slice()}, false, "0/0 endpoints ready"},
		{"not ready", []discoveryv1.EndpointSlice{slice(&no)}, false, "0/1 endpoints ready"},
		{"ready in a second slice", []discoveryv1.EndpointSlice{slice(&no), slice(&yes)}, true, "1/2 endpoints ready"},
		{"readiness unknown counts as ready", []discoveryv1.EndpointSlice{slice(nil)}, true, "1/1 endpoints ready"},
	} {
		if got, msg := readyEndpoints(tc.slices); got != tc.want || msg != tc.msg {
			t.Errorf("%s: %v %q, want %v %q", tc.name, got, msg, tc.want, tc.msg)
		}
	}
}
