package images

import "testing"

// A node is skipped only when it holds every image of the archive under
// its name and with its ID: a missing image, one of another build (same
// name, another ID) or an unreadable listing sends the archive again.
func TestHoldsAll(t *testing.T) {
	listing := []byte(`{"images":[
	  {"id":"sha256:aaa","repoTags":["idharness.local/fakeimds:dev"],"repoDigests":[],"size":"1"},
	  {"id":"sha256:bbb","repoTags":["idharness.local/probe:dev","idharness.local/probe:v1"]},
	  {"id":"sha256:ccc","repoTags":[]}]}`)
	held, err := heldImages(listing)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		want map[string]string
		ok   bool
	}{
		{"all held", map[string]string{"idharness.local/fakeimds:dev": "sha256:aaa", "idharness.local/probe:v1": "sha256:bbb"}, true},
		{"nothing wanted", map[string]string{}, true},
		{"one missing", map[string]string{"idharness.local/fakeimds:dev": "sha256:aaa", "idharness.local/vault:dev": "sha256:ddd"}, false},
		{"another build under the name", map[string]string{"idharness.local/fakeimds:dev": "sha256:zzz"}, false},
		{"an untagged image's ID only", map[string]string{"idharness.local/x:dev": "sha256:ccc"}, false},
	} {
		if got := holdsAll(held, tc.want); got != tc.ok {
			t.Errorf("%s: holdsAll = %v, want %v", tc.name, got, tc.ok)
		}
	}
	if _, err := heldImages([]byte("crictl: not found")); err == nil {
		t.Error("an unreadable listing was read")
	}
}
