package chaos

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// imdsBody is a token response as fakeimds's IMDS face sends it: every
// value a string, fields in the struct's order.
const imdsBody = `{"access_token":"eyJ0","refresh_token":"","expires_in":"86399","expires_on":"1767225600","ext_expires_in":"86399","not_before":"1767139200","resource":"https://vault.azure.net","token_type":"Bearer","client_id":"cid-a"}`

func setField(t *testing.T, params string) *SetField {
	t.Helper()
	r := mustRule(t, `{"name":"s","action":{"type":"set-field",`+params+`}}`)
	if err := r.Validate(); err != nil {
		t.Fatalf("%s: %v", params, err)
	}
	return r.Action.Fault.(*SetField)
}

func TestSetFieldValidate(t *testing.T) {
	for _, tc := range []struct {
		name, params string
		want         string // error substring; "" for valid
	}{
		{"value", `"field":"resource","value":"x"`, ""},
		{"empty value", `"field":"resource","value":""`, ""},
		{"json number", `"field":"expires_on","json":1700000000`, ""},
		{"json null", `"field":"expires_on","json":null`, ""},
		{"json text", `"field":"expires_on","json":"1700000000"`, ""},
		{"template", `"field":"resource","template":"{{.Resource}}/"`, ""},
		{"remove", `"field":"expires_in","remove":true`, ""},
		{"no field", `"value":"x"`, "field: required"},
		{"nothing to do", `"field":"resource"`, "want exactly one of value"},
		{"remove false is nothing", `"field":"resource","remove":false`, "none is set"},
		{"two at once", `"field":"resource","value":"x","remove":true`, "value and remove are set"},
		{"json and template", `"field":"resource","json":1,"template":"x"`, "json and template are set"},
		{"json text not JSON", `"field":"resource","json":"abc"`, `"abc" is not valid JSON`},
		{"empty template", `"field":"resource","template":""`, "template: empty"},
		{"template syntax", `"field":"resource","template":"{{.Resource"`, "template:"},
		{"template unknown field", `"field":"resource","template":"{{.Resorce}}"`, "the fields are .Face"},
		// A template that slices a field passes on the sample request.
		{"template slicing", `"field":"resource","template":"{{slice .Resource 0 8}}"`, ""},
		{"unknown parameter", `"field":"resource","vaule":"x"`, `unknown field "vaule"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var r Rule
			err := json.Unmarshal([]byte(`{"name":"s","action":{"type":"set-field",`+tc.params+`}}`), &r)
			if err == nil {
				err = r.Validate()
			}
			if tc.want == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestSetFieldEdit(t *testing.T) {
	for _, tc := range []struct {
		name, params, body, want string
	}{
		// Each case fails if the field is left alone, if its neighbours
		// move, or (for json) if the value is quoted.
		{"value replaces in place", `"field":"token_type","value":"bearer"`, `{"a":"1","token_type":"Bearer","z":"2"}`,
			`{"a":"1","token_type":"bearer","z":"2"}`},
		{"value added at the end", `"field":"foci","value":"1"`, `{"a":"1"}`, `{"a":"1","foci":"1"}`},
		{"value keeps & unescaped", `"field":"resource","value":"https://x/?a=1&b=2"`, `{"resource":"r"}`, `{"resource":"https://x/?a=1&b=2"}`},
		{"json number", `"field":"expires_on","json":1700000000`, `{"expires_on":"1767225600","resource":"r"}`,
			`{"expires_on":1700000000,"resource":"r"}`},
		{"json text number", `"field":"expires_on","json":"1700000000"`, `{"expires_on":"1767225600"}`, `{"expires_on":1700000000}`},
		{"json null", `"field":"expires_on","json":null`, `{"expires_on":"1767225600"}`, `{"expires_on":null}`},
		{"json object compacted", `"field":"x","json":"{ \"a\" : [1, 2] }"`, `{}`, `{"x":{"a":[1,2]}}`},
		{"remove", `"field":"expires_in","remove":true`, `{"a":"1","expires_in":"3599","z":"2"}`, `{"a":"1","z":"2"}`},
		{"remove absent", `"field":"expires_in","remove":true`, `{"a":"1"}`, `{"a":"1"}`},
		{"remove last", `"field":"z","remove":true`, `{"a":"1","z":"2"}`, `{"a":"1"}`},
		{"duplicate keys all set", `"field":"a","value":"x"`, `{"a":"1","a":"2"}`, `{"a":"x","a":"x"}`},
		{"raw values kept byte for byte", `"field":"a","value":"x"`, `{"n":1.50,"o":{"k" : 1},"a":"1"}`, `{"n":1.50,"o":{"k" : 1},"a":"x"}`},
		{"template sees expires_on", `"field":"expires_in","template":"{{.ExpiresOn}}"`, `{"expires_in":"1","expires_on":"1767225600"}`,
			`{"expires_in":"1767225600","expires_on":"1767225600"}`},
		{"template sees numeric expires_on", `"field":"x","template":"{{.ExpiresOn}}"`, `{"expires_on":1767225600}`,
			`{"expires_on":1767225600,"x":"1767225600"}`},
		{"template without expires_on", `"field":"x","template":"[{{.ExpiresOn}}]"`, `{}`, `{"x":"[]"}`},
		{"not JSON", `"field":"a","value":"x"`, `<html>`, `<html>`},
		{"truncated JSON", `"field":"a","value":"x"`, `{"a":"1"`, `{"a":"1"`},
		{"array", `"field":"a","value":"x"`, `[{"a":"1"}]`, `[{"a":"1"}]`},
		{"string", `"field":"a","value":"x"`, `"a"`, `"a"`},
		{"two objects", `"field":"a","value":"x"`, `{"a":"1"}{"a":"2"}`, `{"a":"1"}{"a":"2"}`},
		{"empty body", `"field":"a","value":"x"`, ``, ``},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := setField(t, tc.params)
			var fx Effects
			f.Apply(&fx, nil)
			if len(fx.BodyEdits) != 1 {
				t.Fatalf("%d body edits, want 1", len(fx.BodyEdits))
			}
			if got := string(fx.BodyEdits[0]([]byte(tc.body))); got != tc.want {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
}

// TestSetFieldThroughEngine checks that the engine hands set-field the
// request it hit: each template field must come from the request, not
// from a zero value (a plain Apply would render them empty).
func TestSetFieldThroughEngine(t *testing.T) {
	c := &clock{time.Unix(1700000000, 0)}
	e := NewEngine(1, c.now)
	err := e.Add(
		mustRule(t, `{"name":"echo","match":{"path":"/metadata/identity/oauth2/token"},"action":{"type":"set-field","field":"resource","template":"{{.Resource}}/"}}`),
		mustRule(t, `{"name":"who","action":{"type":"set-field","field":"who","template":"{{.Face}} {{.Method}} {{.Path}} {{.ClientID}} {{.Selector}} {{.Now}}"}}`),
		mustRule(t, `{"name":"num","action":{"type":"set-field","field":"expires_on","json":1700000000}}`),
		mustRule(t, `{"name":"gone","action":{"type":"set-field","field":"expires_in","remove":true}}`),
	)
	if err != nil {
		t.Fatal(err)
	}
	r := req("imds", "10.0.0.1")
	r.Path += "/"
	r.ClientID, r.Selector = "cid-a", "cid-a"
	fx := e.Evaluate(r)
	if fx == nil || strings.Join(fx.Faults, ",") != "echo,who,num,gone" {
		t.Fatalf("effects %+v", fx)
	}
	body := []byte(imdsBody)
	for _, edit := range fx.BodyEdits {
		body = edit(body)
	}
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatalf("edited body %s: %v", body, err)
	}
	want := map[string]any{
		"resource":   "https://vault.azure.net/",
		"who":        "imds GET /metadata/identity/oauth2/token/ cid-a cid-a 1700000000",
		"expires_on": float64(1700000000),
	}
	for k, v := range want {
		if m[k] != v {
			t.Errorf("%s = %#v, want %#v", k, m[k], v)
		}
	}
	if _, ok := m["expires_in"]; ok {
		t.Errorf("expires_in not removed: %s", body)
	}
	if m["access_token"] != "eyJ0" || m["ext_expires_in"] != "86399" {
		t.Errorf("other fields changed: %s", body)
	}
	// A request for another resource renders its own: the template is
	// rendered per request, not once.
	r2 := req("imds", "10.0.0.1")
	r2.Resource = "https://storage.azure.com"
	fx = e.Evaluate(r2)
	if got := string(fx.BodyEdits[0]([]byte(`{"resource":"x"}`))); got != `{"resource":"https://storage.azure.com/"}` {
		t.Errorf("second request: %s", got)
	}
}

// TestSetFieldRoundTrip: the control API lists rules by marshalling them,
// and a listed rule must add back as the same rule; json: null in
// particular must not be lost (it would then set nothing and be refused).
func TestSetFieldRoundTrip(t *testing.T) {
	for _, params := range []string{
		`"field":"expires_on","json":null`,
		`"field":"expires_on","json":1700000000`,
		`"field":"resource","value":""`,
		`"field":"resource","template":"{{.Resource}}/"`,
		`"field":"expires_in","remove":true`,
	} {
		r := mustRule(t, `{"name":"s","action":{"type":"set-field",`+params+`}}`)
		b, err := json.Marshal(r.Action)
		if err != nil {
			t.Fatal(err)
		}
		var back Action
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatalf("%s: %v", b, err)
		}
		if err := back.Fault.Validate(); err != nil {
			t.Errorf("%s does not survive a round trip (%s): %v", params, b, err)
		}
		if !jsonEqual(t, string(b), `{"type":"set-field",`+params+`}`) {
			t.Errorf("marshalled %s, want the parameters %s", b, params)
		}
	}
}

func TestJSONText(t *testing.T) {
	for in, want := range map[string]string{`"1767225600"`: "1767225600", `1767225600`: "1767225600", `null`: "", `"a\"b"`: `a"b`} {
		if got := jsonText(json.RawMessage(in)); got != want {
			t.Errorf("jsonText(%s) = %q, want %q", in, got, want)
		}
	}
}
