package journal

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

// TestSlotHasNoPointers checks that the ring's slots hold no pointers,
// which is what keeps the collector from scanning the ring: a string or
// slice field added to slot would bring the scanning back unnoticed.
func TestSlotHasNoPointers(t *testing.T) {
	var check func(string, reflect.Type)
	check = func(path string, typ reflect.Type) {
		switch typ.Kind() {
		case reflect.Struct:
			for i := 0; i < typ.NumField(); i++ {
				check(path+"."+typ.Field(i).Name, typ.Field(i).Type)
			}
		case reflect.Array:
			check(path+"[]", typ.Elem())
		case reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
			reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Float32, reflect.Float64:
		default:
			t.Errorf("%s is a %s, which the collector scans", path, typ.Kind())
		}
	}
	check("slot", reflect.TypeOf(slot{}))
}

// TestRingRoundTrip checks that every entry comes back from the ring as
// it went in, packed or kept whole: each string field set in turn (found
// by reflection, so a field added to Entry later is checked too), and
// the entries a slot cannot hold.
func TestRingRoundTrip(t *testing.T) {
	base := Entry{Time: time.Date(2026, 12, 3, 14, 0, 0, 123456789, time.UTC), Face: "imds", Remote: "10.0.0.7:41000",
		Method: "GET", Path: "/metadata/identity/oauth2/token", Query: "api-version=2018-02-01&resource=https%3A%2F%2Fvault.azure.net",
		Headers: map[string]string{"Metadata": "true", "User-Agent": "azsdk-go-azidentity/v1.15.0"}, Selector: "default",
		Identity: "5b1c3f1a-7d0e-4c26-9d0e-3f6a2b8c9d01", IdentityName: "system", Resource: "https://vault.azure.net",
		Status: 200, Cached: true, LatencyMS: 0.125}
	cases := map[string]Entry{
		"token request":         base,
		"zero entry":            {},
		"local time":            with(base, func(e *Entry) { e.Time = time.Unix(1764770000, 5).Local() }),
		"now, monotonic":        with(base, func(e *Entry) { e.Time = time.Now() }),
		"other location":        with(base, func(e *Entry) { e.Time = base.Time.In(time.FixedZone("X", 3600)) }),
		"empty header map":      with(base, func(e *Entry) { e.Headers = map[string]string{} }),
		"no header map":         with(base, func(e *Entry) { e.Headers = nil }),
		"empty header value":    with(base, func(e *Entry) { e.Headers = map[string]string{"X-Forwarded-For": ""} }),
		"faults":                with(base, func(e *Entry) { e.Faults = []string{"latency"}; e.Status = 0 }),
		"empty faults":          with(base, func(e *Entry) { e.Faults = []string{} }),
		"too long for a slot":   with(base, func(e *Entry) { e.Query = strings.Repeat("q", slotBytes) }),
		"exactly a slot":        exactlyASlot(base),
		"truncated":             with(base, func(e *Entry) { e.Resource = strings.Repeat("r", MaxFieldBytes+1) }),
		"long header value":     with(base, func(e *Entry) { e.Headers = map[string]string{"User-Agent": strings.Repeat("u", 300)} }),
		"negative status, utf8": with(base, func(e *Entry) { e.Status = -1; e.Error = "é€😀" }),
	}
	typ := reflect.TypeOf(Entry{})
	for i := 0; i < typ.NumField(); i++ {
		if typ.Field(i).Type.Kind() == reflect.String {
			e := base
			reflect.ValueOf(&e).Elem().Field(i).SetString("v-" + typ.Field(i).Name)
			cases["field "+typ.Field(i).Name] = e
		}
	}
	for name, in := range cases {
		t.Run(name, func(t *testing.T) {
			j := New(2)
			j.Add(Entry{Face: "before"})
			j.Add(in)
			j.Add(Entry{Face: "after"}) // overwrites "before": the ring wrapped
			got := j.Since(0)
			if len(got) != 2 || got[1].Face != "after" {
				t.Fatalf("Since(0) = %+v", got)
			}
			want := bounded(in)
			want.Seq = 2
			checkEntry(t, got[0], want)
			if got := j.Since(2); len(got) != 1 || got[0].Seq != 3 {
				t.Errorf("Since(2) = %+v", got)
			}
			j.Add(Entry{}) // overwrites in's slot
			if got := j.Since(0); len(got) != 2 || got[0].Seq != 3 || got[1].Seq != 4 || len(j.spill) != 0 {
				t.Errorf("after wrapping again: %+v, %d kept whole", got, len(j.spill))
			}
		})
	}
}

func with(e Entry, f func(*Entry)) Entry {
	f(&e)
	return e
}

// exactlyASlot is e with a query that fills its slot to the last byte.
func exactlyASlot(e Entry) Entry {
	hdr := appendHeaders(nil, e.Headers)
	n := len(e.Face) + len(e.Remote) + len(e.Method) + len(e.Path) + len(e.Selector) + len(e.Identity) +
		len(e.IdentityName) + len(e.Resource) + len(e.Error) + len(e.RetryAfter) + len(hdr)
	e.Query = strings.Repeat("q", slotBytes-n)
	return e
}

// checkEntry compares got with want field by field: times by instant and
// location (a packed time keeps no monotonic reading).
func checkEntry(t *testing.T, got, want Entry) {
	t.Helper()
	if !got.Time.Equal(want.Time) || got.Time.Location().String() != want.Time.Location().String() {
		t.Errorf("Time = %v, want %v", got.Time, want.Time)
	}
	got.Time, want.Time = time.Time{}, time.Time{}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}
}

// TestSinceSharesDecodedHeaders checks that entries read back with the
// same headers share one map and that different headers do not.
func TestSinceSharesDecodedHeaders(t *testing.T) {
	j := New(8)
	a := map[string]string{"Metadata": "true"}
	b := map[string]string{"Metadata": "false"}
	for _, h := range []map[string]string{a, a, b, a} {
		j.Add(Entry{Headers: h})
	}
	got := j.Since(0)
	if mapID(got[0].Headers) != mapID(got[1].Headers) {
		t.Error("two entries with the same headers got two maps")
	}
	if got[2].Headers["Metadata"] != "false" || got[3].Headers["Metadata"] != "true" {
		t.Errorf("headers = %v, %v", got[2].Headers, got[3].Headers)
	}
}
