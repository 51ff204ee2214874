package chaos

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync/atomic"
	"text/template"
	"time"
)

func init() { Register("set-field", func() Fault { return &SetField{} }) }

// SetField sets one top-level field of a successful JSON response body
// (a token response, when the rule matches a token path) to a chosen
// value, or removes it:
//
//	{"type":"set-field","field":"resource","template":"{{.Resource}}/"}
//	{"type":"set-field","field":"expires_on","json":1700000000}
//	{"type":"set-field","field":"expires_in","remove":true}
//
// field-types covers the variants other implementations are known to
// send; set-field is for the one-off a test needs (a resource echoed with
// a trailing slash, a token_type in lower case, a field IMDS never sent).
// Exactly one of Value, JSON, Template or Remove says what to do. A body
// that is not a JSON object is left alone; a field that is absent is
// added at the end; the other fields keep their order and bytes.
type SetField struct {
	// Field is the top-level JSON field name, e.g. access_token.
	Field string `json:"field"`
	// Value sets the field to this string.
	Value *string `json:"value,omitempty"`
	// JSON sets the field to this JSON value: a number, true, null, an
	// object… A JSON string given here is read as JSON text, so that
	// YAML's json: '1700000000' sets a number as json: 1700000000 does;
	// to set a string, use Value (or json: '"text"').
	JSON json.RawMessage `json:"json,omitempty"`
	// Template sets the field to a string rendered by Go's text/template
	// with SetFieldData, e.g. {{.Resource}}/.
	Template *string `json:"template,omitempty"`
	// Remove deletes the field.
	Remove bool `json:"remove,omitempty"`

	// compiled is what Validate made of the parameters, set once: a rule
	// the engine holds may be validated again while requests use it (the
	// server revalidates its configuration), so later Validates only check.
	compiled atomic.Pointer[setFieldCompiled]
}

// setFieldCompiled is the JSON to write (from Value or JSON) or the
// parsed template.
type setFieldCompiled struct {
	value []byte
	tmpl  *template.Template
}

// SetFieldData is what a set-field template is rendered with.
type SetFieldData struct {
	// Face, Method and Path are the request's (Path as sent, not
	// canonical).
	Face, Method, Path string
	// Resource is the resource the request asked for, if any.
	Resource string
	// ClientID is the client_id the request sent, if any; Selector the
	// value of whichever identity selector it sent (client_id, object_id,
	// msi_res_id…), if any.
	ClientID, Selector string
	// Now is the engine's clock, in Unix seconds, when the rule hit.
	Now int64
	// ExpiresOn is the body's own expires_on as text (a string's value or
	// a number's digits), empty if it has none.
	ExpiresOn string
}

// sampleData is what Validate renders a template with to try it.
var sampleData = SetFieldData{Face: "imds", Method: "GET", Path: "/metadata/identity/oauth2/token",
	Resource: "https://management.azure.com/", ClientID: "11111111-1111-4111-8111-111111111111",
	Selector: "11111111-1111-4111-8111-111111111111", Now: 1700000000, ExpiresOn: "1700086400"}

// Validate checks the parameters, and parses and trial-renders the
// template, so that a mistake is refused when the rule is loaded rather
// than found when a request hits it.
func (s *SetField) Validate() error {
	if s.Field == "" {
		return fmt.Errorf("field: required; name the top-level JSON field to change, e.g. expires_on")
	}
	var set []string
	if s.Value != nil {
		set = append(set, "value")
	}
	if s.JSON != nil {
		set = append(set, "json")
	}
	if s.Template != nil {
		set = append(set, "template")
	}
	if s.Remove {
		set = append(set, "remove")
	}
	if len(set) != 1 {
		how := "none is"
		if len(set) > 1 {
			how = strings.Join(set, " and ") + " are"
		}
		return fmt.Errorf("want exactly one of value (a string), json (a JSON value), template (rendered to a string) or remove: true; %s set", how)
	}
	var c setFieldCompiled
	switch {
	case s.Value != nil:
		c.value = marshalString(*s.Value)
	case s.JSON != nil:
		v, err := jsonValue(s.JSON)
		if err != nil {
			return err
		}
		c.value = v
	case s.Template != nil:
		if *s.Template == "" {
			return fmt.Errorf("template: empty; to set an empty string write value: \"\"")
		}
		t, err := template.New("set-field " + s.Field).Parse(*s.Template)
		if err != nil {
			return fmt.Errorf("template: %v", err)
		}
		// Parse accepts unknown fields ({{.Resorce}}); executing finds
		// them. The sample is a plausible request, so that a template
		// that slices or indexes a field is not refused for emptiness.
		if err := t.Execute(&bytes.Buffer{}, sampleData); err != nil {
			return fmt.Errorf("template: %v; the fields are .Face, .Method, .Path, .Resource, .ClientID, .Selector, .Now and .ExpiresOn", err)
		}
		c.tmpl = t
	}
	s.compiled.CompareAndSwap(nil, &c)
	return nil
}

// jsonValue returns the JSON value raw gives: raw itself, or, when raw is
// a JSON string, the JSON text that string holds.
func jsonValue(raw json.RawMessage) ([]byte, error) {
	raw = bytes.TrimSpace(raw)
	var text string
	if len(raw) == 0 || raw[0] != '"' || json.Unmarshal(raw, &text) != nil {
		// Not a string: a value the decoder already checked (null too,
		// which Unmarshal would take as an empty string).
		return compact(raw)
	}
	if !json.Valid([]byte(text)) {
		return nil, fmt.Errorf("json: %q is not valid JSON (a string given to json is read as JSON text); to set the string, use value: %q", text, text)
	}
	return compact([]byte(text))
}

func compact(b []byte) ([]byte, error) {
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil {
		return nil, fmt.Errorf("json: %v", err)
	}
	return buf.Bytes(), nil
}

// marshalString encodes s as a JSON string without escaping <, > and &,
// so that a URL keeps its spelling on the wire.
func marshalString(s string) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s)
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

// Apply edits the body as ApplyRequest does, for callers without a
// request: a template sees empty request fields and the current time.
func (s *SetField) Apply(fx *Effects, rnd *rand.Rand) {
	s.ApplyRequest(fx, rnd, &Request{}, time.Now())
}

// ApplyRequest adds the body edit, with the request's details captured
// for the template.
func (s *SetField) ApplyRequest(fx *Effects, _ *rand.Rand, req *Request, now time.Time) {
	c := s.compiled.Load()
	if c == nil {
		// Not validated (a fault applied directly): nothing to set.
		return
	}
	field, value, remove, tmpl := s.Field, c.value, s.Remove, c.tmpl
	data := SetFieldData{Face: req.Face, Method: req.Method, Path: req.Path, Resource: req.Resource,
		ClientID: req.ClientID, Selector: req.Selector, Now: now.Unix()}
	fx.BodyEdits = append(fx.BodyEdits, func(b []byte) []byte {
		fields, ok := objectFields(b)
		if !ok {
			return b
		}
		v := value
		if tmpl != nil {
			d := data
			for _, f := range fields {
				if f.key == "expires_on" {
					d.ExpiresOn = jsonText(f.value)
				}
			}
			var out bytes.Buffer
			if tmpl.Execute(&out, d) != nil {
				return b
			}
			v = marshalString(out.String())
		}
		var buf bytes.Buffer
		buf.WriteByte('{')
		found := false
		put := func(k string, val []byte) {
			if buf.Len() > 1 {
				buf.WriteByte(',')
			}
			buf.Write(marshalString(k))
			buf.WriteByte(':')
			buf.Write(val)
		}
		for _, f := range fields {
			if f.key != field {
				put(f.key, f.value)
				continue
			}
			found = true
			if !remove {
				put(f.key, v)
			}
		}
		if !found && !remove {
			put(field, v)
		}
		buf.WriteByte('}')
		return buf.Bytes()
	})
}

type objectField struct {
	key   string
	value json.RawMessage
}

// objectFields returns the fields of the JSON object b in their order, or
// false when b is not one JSON object.
func objectFields(b []byte) ([]objectField, bool) {
	dec := json.NewDecoder(bytes.NewReader(b))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil, false
	}
	var fields []objectField
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return nil, false
		}
		key, _ := t.(string)
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, false
		}
		fields = append(fields, objectField{key, v})
	}
	if t, err := dec.Token(); err != nil || t != json.Delim('}') {
		return nil, false
	}
	// Anything but space after the object means b is not one JSON object.
	if len(bytes.TrimSpace(b[dec.InputOffset():])) > 0 {
		return nil, false
	}
	return fields, true
}

// jsonText is a JSON string's value, or any other value's text; null is
// "", as an absent field is.
func jsonText(v json.RawMessage) string {
	if string(v) == "null" {
		return ""
	}
	var s string
	if len(v) > 0 && v[0] == '"' && json.Unmarshal(v, &s) == nil {
		return s
	}
	return string(v)
}
