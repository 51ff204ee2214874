package chaos

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"
)

func init() { Register("field-types", func() Fault { return &FieldTypes{} }) }

// FieldTypes changes the token response's fields the way other
// implementations differ from IMDS: {"type":"field-types","variant":"numeric-expires-on"}.
type FieldTypes struct {
	// Variant is numeric-expires-on, numeric-expires-in, date-expires-on
	// (an RFC 1123 date, as App Service's 2017 API sent), missing-resource
	// or missing-expires-on.
	Variant string `json:"variant"`
}

var fieldVariants = []string{"numeric-expires-on", "numeric-expires-in", "date-expires-on", "missing-resource", "missing-expires-on"}

// Validate checks the variant.
func (f *FieldTypes) Validate() error {
	if !contains(fieldVariants, f.Variant) {
		return fmt.Errorf("variant: want one of %v, got %q", fieldVariants, f.Variant)
	}
	return nil
}

// Apply adds the body edit.
func (f *FieldTypes) Apply(fx *Effects, _ *rand.Rand) {
	v := f.Variant
	fx.BodyEdits = append(fx.BodyEdits, func(b []byte) []byte {
		var m map[string]any
		if json.Unmarshal(b, &m) != nil {
			return b
		}
		toNumber := func(k string) {
			if s, ok := m[k].(string); ok {
				if n, err := strconv.ParseInt(s, 10, 64); err == nil {
					m[k] = n
				}
			}
		}
		switch v {
		case "numeric-expires-on":
			toNumber("expires_on")
		case "numeric-expires-in":
			toNumber("expires_in")
			toNumber("ext_expires_in")
		case "date-expires-on":
			if s, ok := m["expires_on"].(string); ok {
				if n, err := strconv.ParseInt(s, 10, 64); err == nil {
					m["expires_on"] = time.Unix(n, 0).UTC().Format("01/02/2006 15:04:05 +00:00")
				}
			}
		case "missing-resource":
			delete(m, "resource")
		case "missing-expires-on":
			delete(m, "expires_on")
		}
		out, err := json.Marshal(m)
		if err != nil {
			return b
		}
		return out
	})
}
