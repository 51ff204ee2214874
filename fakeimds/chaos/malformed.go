package chaos

import (
	"fmt"
	"math/rand/v2"
)

func init() { Register("malformed", func() Fault { return &Malformed{Form: "truncated"} }) }

// Malformed breaks a successful body: {"type":"malformed","form":"truncated"}.
type Malformed struct {
	// Form is truncated (the JSON cut in half), non-json (an HTML error
	// page, as a misconfigured proxy returns) or empty.
	Form string `json:"form"`
}

// Validate checks the form.
func (m *Malformed) Validate() error {
	switch m.Form {
	case "truncated", "non-json", "empty":
		return nil
	}
	return fmt.Errorf("form: want truncated, non-json or empty, got %q", m.Form)
}

// Apply adds the body edit.
func (m *Malformed) Apply(fx *Effects, _ *rand.Rand) {
	form := m.Form
	fx.BodyEdits = append(fx.BodyEdits, func(b []byte) []byte {
		switch form {
		case "truncated":
			return b[:len(b)/2]
		case "non-json":
			return []byte("<html><body><h1>502 Bad Gateway</h1></body></html>\n")
		}
		return nil
	})
}
