package chaos

import (
	"math/rand/v2"
	"net/http"
	"time"

	"github.com/idharness/idharness/fakeimds/token"
)

// Fault is one kind of fault: its parameters (decoded from the rule's
// action object) and what it does to a request.
type Fault interface {
	// Validate checks the parameters.
	Validate() error
	// Apply adds the fault's effects on one request to fx. rnd is the
	// rule's own seeded random source.
	Apply(fx *Effects, rnd *rand.Rand)
}

// RequestFault is implemented by faults whose effects depend on the
// request they hit (set-field renders templates with its resource and
// identity). The engine calls ApplyRequest instead of Apply for them, with
// the request and the engine's clock reading when the rule hit; Apply
// stays for callers without a request. An optional interface rather than
// request fields on Effects or a request argument to every BodyEdit:
// only the faults that need the request see it, and the others and the
// server are unchanged.
type RequestFault interface {
	Fault
	// ApplyRequest adds the fault's effects on req to fx. It must copy
	// what it needs rather than keep req: the caller owns req, and its
	// Header is the live request's.
	ApplyRequest(fx *Effects, rnd *rand.Rand, req *Request, now time.Time)
}

// connFault is implemented by faults that act on a listener rather than
// on requests (refuse, blackhole).
type connFault interface {
	listenerLevel() bool
}

// handshakeFault is implemented by faults that act on a TLS handshake
// (tls-certificate): before any request, but per connection, so that
// they can match the client's address.
type handshakeFault interface {
	handshakeLevel() bool
}

// ConnAction is what happens to a request's connection instead of a response.
type ConnAction int

// The connection actions.
const (
	// ConnNone lets the request be answered.
	ConnNone ConnAction = iota
	// ConnReset aborts the connection with a TCP RST.
	ConnReset
	// ConnClose closes the connection without a response.
	ConnClose
	// ConnHang holds the request until the client gives up or HangMax passes.
	ConnHang
)

// Response is a canned answer that replaces the face's own.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// BodyEdit rewrites a successful response's body.
type BodyEdit func(body []byte) []byte

// Effects are the combined effects of every rule that hit one request,
// in rule order. The server carries them out.
type Effects struct {
	// Faults names the rules that hit the request.
	Faults []string
	// Delay holds the response back before its headers.
	Delay time.Duration
	// MidBodyDelay pauses after the first half of the body is sent.
	MidBodyDelay time.Duration
	// BytesPerSecond paces the body; zero is unpaced.
	BytesPerSecond int
	// Response replaces the face's answer when set.
	Response *Response
	// Conn replaces any answer with a connection action when not ConnNone.
	Conn ConnAction
	// HangMax bounds ConnHang.
	HangMax time.Duration
	// BodyEdits rewrite a 200 body in order.
	BodyEdits []BodyEdit
	// Shift moves the minted token's times.
	Shift *token.Shift
	// WrongIdentity makes the token be for another identity than the one
	// the request gets: WrongIdentityID names it, empty picks any other.
	WrongIdentity   bool
	WrongIdentityID string
}

// terminal reports whether the request is already decided, so rules after
// this one do not apply.
func (fx *Effects) terminal() bool { return fx.Response != nil || fx.Conn != ConnNone }
