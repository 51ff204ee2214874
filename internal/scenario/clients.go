package scenario

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"

	"github.com/idharness/idharness/clients"
	_ "github.com/idharness/idharness/clients/all" // the Go clients, run in process
)

// clientTag marks an in-cluster probe's requests in their User-Agent so
// that the fake's journal can attribute them when they all come through
// one node agent; locally, requests are attributed by source address.
const clientTag = "idharness-client/"

var clientTagPattern = regexp.MustCompile(regexp.QuoteMeta(clientTag) + `([a-z0-9-]+)`)

// clientOf returns the client named in a journal entry's User-Agent.
func clientOf(userAgent string) string {
	if m := clientTagPattern.FindStringSubmatch(userAgent); m != nil {
		return m[1]
	}
	return ""
}

// registry returns the client registry.
func registry() (*clients.Registry, error) { return clients.Builtin() }

// CheckEnv returns an error naming the environment variables that would
// steer in-process SDK clients away from the fake IMDS (programs get an
// environment of their own).
func CheckEnv() error {
	var set []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if clients.IdentityEnv(k) {
			set = append(set, k)
		}
	}
	if len(set) > 0 {
		return fmt.Errorf("unset %s before running a scenario: they make the SDK clients use another managed identity source or credential than the fake IMDS", strings.Join(set, ", "))
	}
	return nil
}

// tokenClaims are the claims the expectations check.
type tokenClaims struct {
	AppID string `json:"appid"`
	Exp   int64  `json:"exp"`
}

// readClaims decodes a JWT's payload without verifying it: the run only
// needs to know whose token a client was handed.
func readClaims(tok string) (tokenClaims, error) {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return tokenClaims{}, errors.New("not a JWT")
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return tokenClaims{}, fmt.Errorf("JWT payload: %w", err)
	}
	var c tokenClaims
	if err := json.Unmarshal(b, &c); err != nil {
		return tokenClaims{}, fmt.Errorf("JWT payload: %w", err)
	}
	return c, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
