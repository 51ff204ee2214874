// Package token mints the access tokens fakeimds hands out: RS256 JSON Web
// Tokens with the claims Azure AD puts in managed identity tokens, signed by
// a key the server generates or loads, published as a JSON Web Key Set.
package token

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// Signer signs tokens with one RSA key and publishes its public half.
type Signer struct {
	key    *rsa.PrivateKey
	kid    string
	signer jose.Signer
	jwks   jose.JSONWebKeySet
}

// GenerateKey returns a fresh 2048-bit RSA key, the size Azure AD signs with.
func GenerateKey() (*rsa.PrivateKey, error) {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, fmt.Errorf("generate RSA signing key: %w", err)
	}
	return k, nil
}

// LoadKeyFile reads an RSA private key from a PEM file (PKCS#1 or PKCS#8).
func LoadKeyFile(path string) (*rsa.PrivateKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read signing key: %w", err)
	}
	k, err := ParseKeyPEM(b)
	if err != nil {
		return nil, fmt.Errorf("signing key %s: %w", path, err)
	}
	return k, nil
}

// ParseKeyPEM parses an RSA private key in PEM form (PKCS#1 or PKCS#8).
func ParseKeyPEM(b []byte) (*rsa.PrivateKey, error) {
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, errors.New("no PEM block found; expected an RSA PRIVATE KEY or PRIVATE KEY block")
	}
	if k, err := x509.ParsePKCS1PrivateKey(blk.Bytes); err == nil {
		return k, nil
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse private key: %w", err)
	}
	rk, ok := k.(*rsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("private key is %T; only RSA keys can sign RS256 tokens", k)
	}
	return rk, nil
}

// EncodeKeyPEM returns key as a PKCS#1 PEM block, the form LoadKeyFile reads.
func EncodeKeyPEM(key *rsa.PrivateKey) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
}

// NewSigner returns a signer for key. Like Azure AD, the published key
// carries a self-signed certificate (x5c) and its SHA-1 thumbprint (x5t),
// and the key ID is that thumbprint, so verifiers that match on either work.
// The certificate depends on the key alone (fixed validity, deterministic
// PKCS #1 v1.5 signature), so servers sharing a key — one per node —
// publish the same key ID.
func NewSigner(key *rsa.PrivateKey) (*Signer, error) {
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "fakeimds token signing"},
		NotBefore:             time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC),
		NotAfter:              time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("self-sign token signing certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parse token signing certificate: %w", err)
	}
	thumb := sha1.Sum(der)
	kid := base64.RawURLEncoding.EncodeToString(thumb[:])
	pub := jose.JSONWebKey{
		Key:                       &key.PublicKey,
		KeyID:                     kid,
		Algorithm:                 string(jose.RS256),
		Use:                       "sig",
		Certificates:              []*x509.Certificate{cert},
		CertificateThumbprintSHA1: thumb[:],
	}
	sig, err := jose.NewSigner(
		jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: key, KeyID: kid}},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader("x5t", kid),
	)
	if err != nil {
		return nil, fmt.Errorf("create RS256 signer: %w", err)
	}
	return &Signer{key: key, kid: kid, signer: sig, jwks: jose.JSONWebKeySet{Keys: []jose.JSONWebKey{pub}}}, nil
}

// KeyID returns the key ID put in every token's header.
func (s *Signer) KeyID() string { return s.kid }

// PublicKey returns the verification key.
func (s *Signer) PublicKey() crypto.PublicKey { return &s.key.PublicKey }

// JWKS returns the key set that verifies this signer's tokens.
func (s *Signer) JWKS() jose.JSONWebKeySet { return s.jwks }

// Sign signs payload (a JSON claims object) and returns the compact JWT.
func (s *Signer) Sign(payload []byte) (string, error) {
	obj, err := s.signer.Sign(payload)
	if err != nil {
		return "", fmt.Errorf("sign token: %w", err)
	}
	tok, err := obj.CompactSerialize()
	if err != nil {
		return "", fmt.Errorf("serialize token: %w", err)
	}
	return tok, nil
}
