package chaos

import (
	"fmt"
	"math/rand/v2"
)

func init() {
	Register("tls-certificate", func() Fault { return &TLSCertificate{} })
}

// The certificates a tls-certificate rule can make the authority serve.
const (
	// CertUntrusted is a certificate for the same names from a CA no
	// client trusts, as behind a TLS-intercepting proxy.
	CertUntrusted = "untrusted"
	// CertExpired is a certificate for the same names, from the trusted
	// CA, that expired an hour ago: a certificate nobody renewed.
	CertExpired = "expired"
)

// TLSCertificate makes the HTTPS listener of the matched faces (the
// authority's) present another certificate in the TLS handshakes of new
// connections while the rule is active: {"type":"tls-certificate",
// "certificate":"untrusted"} or "expired". Connections already open keep
// the certificate they were made with, as with a real certificate
// change, so the server closes them when the rule starts. It acts before
// any request is read: it matches faces and sources only.
type TLSCertificate struct {
	Certificate string `json:"certificate"`
}

// Validate checks the certificate named.
func (t *TLSCertificate) Validate() error {
	switch t.Certificate {
	case CertUntrusted, CertExpired:
		return nil
	case "":
		return fmt.Errorf("certificate: required: %s or %s", CertUntrusted, CertExpired)
	}
	return fmt.Errorf("certificate: want %s or %s, got %q", CertUntrusted, CertExpired, t.Certificate)
}

// Apply does nothing per request: the TLS handshake carries the fault.
func (*TLSCertificate) Apply(*Effects, *rand.Rand) {}

func (*TLSCertificate) handshakeLevel() bool { return true }
