package chaos

import "math/rand/v2"

func init() { Register("wrong-identity", func() Fault { return &WrongIdentity{} }) }

// WrongIdentity answers with a token for another identity than the one
// the request gets, as a buggy node agent might: {"type":"wrong-identity"}.
type WrongIdentity struct {
	// ClientID names the identity whose token is handed out; empty picks
	// another attached identity.
	ClientID string `json:"clientId,omitempty"`
}

// Validate accepts any parameters.
func (*WrongIdentity) Validate() error { return nil }

// Apply swaps the identity.
func (w *WrongIdentity) Apply(fx *Effects, _ *rand.Rand) {
	fx.WrongIdentity, fx.WrongIdentityID = true, w.ClientID
}
