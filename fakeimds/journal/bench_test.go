package journal

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

// BenchmarkAdd measures appending a token request's entry, as the cached
// token path does once per request, from one goroutine and from all.
//
//	go test -run '^$' -bench Add -benchmem ./fakeimds/journal/
func BenchmarkAdd(b *testing.B) {
	hdr := map[string]string{"Metadata": "true", "User-Agent": "azsdk-go-azidentity/v1.15.0 (go1.26; linux)"}
	e := Entry{Time: time.Now(), Face: "imds", Remote: "127.0.0.1:40000", Method: "GET", Path: "/metadata/identity/oauth2/token",
		Query: "api-version=2018-02-01&resource=https%3A%2F%2Fvault.azure.net", Headers: hdr, Selector: "default",
		Identity: "5b1c3f1a-7d0e-4c26-9d0e-3f6a2b8c9d01", IdentityName: "system", Resource: "https://vault.azure.net", Status: 200, Cached: true}
	b.Run("serial", func(b *testing.B) {
		j := New(DefaultCapacity)
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			j.Add(e)
		}
	})
	b.Run("parallel", func(b *testing.B) {
		j := New(DefaultCapacity)
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				j.Add(e)
			}
		})
	})
}

// TestFitsMatchesBound checks that fits, Add's shortcut, reports false
// exactly when bound would cut something, for every string field of an
// entry (found by reflection, so that a field added to bound later is
// checked too), header values and fault names.
func TestFitsMatchesBound(t *testing.T) {
	long := strings.Repeat("x", MaxFieldBytes+1)
	typ := reflect.TypeOf(Entry{})
	for i := 0; i < typ.NumField(); i++ {
		if typ.Field(i).Type.Kind() != reflect.String {
			continue
		}
		var e Entry
		reflect.ValueOf(&e).Elem().Field(i).SetString(long)
		cut := len(bounded(e).Truncated) > 0
		if e.fits() == cut {
			t.Errorf("field %s too long: fits %v, bound cuts %v", typ.Field(i).Name, e.fits(), cut)
		}
	}
	for _, e := range []Entry{{Headers: map[string]string{"User-Agent": long}}, {Faults: []string{"a", long}}} {
		if e.fits() || len(bounded(e).Truncated) == 0 {
			t.Errorf("%+v: fits %v", e, e.fits())
		}
	}
	if e := (Entry{Query: long[1:], Headers: map[string]string{"Metadata": "true"}}); !e.fits() {
		t.Error("an entry within the bounds does not fit")
	}
}

// BenchmarkSince measures reading a full journal back, as the control
// API's /v1/journal does: every entry unpacked from its slot.
//
//	go test -run '^$' -bench Since -benchmem ./fakeimds/journal/
func BenchmarkSince(b *testing.B) {
	hdr := map[string]string{"Metadata": "true", "User-Agent": "azsdk-go-azidentity/v1.15.0 (go1.26; linux)"}
	e := Entry{Time: time.Now(), Face: "imds", Remote: "127.0.0.1:40000", Method: "GET", Path: "/metadata/identity/oauth2/token",
		Query: "api-version=2018-02-01&resource=https%3A%2F%2Fvault.azure.net", Headers: hdr, Selector: "default",
		Identity: "5b1c3f1a-7d0e-4c26-9d0e-3f6a2b8c9d01", IdentityName: "system", Resource: "https://vault.azure.net", Status: 200, Cached: true}
	j := New(DefaultCapacity)
	for i := 0; i < DefaultCapacity; i++ {
		j.Add(e)
	}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if len(j.Since(0)) != DefaultCapacity {
			b.Fatal("short read")
		}
	}
}
