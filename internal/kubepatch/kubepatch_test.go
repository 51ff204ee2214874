package kubepatch

import "testing"

// TestAnnotation: the key and value are JSON-escaped, not Go-quoted.
func TestAnnotation(t *testing.T) {
	for _, tc := range []struct{ key, value, want string }{
		{"idharness.io/start", "2026-01-02T15:04:05.5Z", `{"metadata":{"annotations":{"idharness.io/start":"2026-01-02T15:04:05.5Z"}}}`},
		{"k", `{"seq":1,"x":"\u00e9<"}`, `{"metadata":{"annotations":{"k":"{\"seq\":1,\"x\":\"\\u00e9\u003c\"}"}}}`},
	} {
		if got := string(Annotation(tc.key, tc.value)); got != tc.want {
			t.Errorf("Annotation(%q, %q) = %s, want %s", tc.key, tc.value, got, tc.want)
		}
	}
}
