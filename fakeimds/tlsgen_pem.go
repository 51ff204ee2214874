package fakeimds

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"time"
)

// NewServingCertPEM makes a throwaway CA and a server certificate signed
// by it for hosts (DNS names or IP addresses, besides localhost and the
// loopback addresses), as the authority's HTTPS listener does for itself,
// and returns them as PEM: the CA certificate to give clients, and the
// server's certificate chain and private key to give the server. Callers
// that deploy servers (the workload identity webhook and authority in a
// cluster) make their certificates with it at deploy time.
func NewServingCertPEM(hosts []string, now time.Time) (caPEM, certPEM, keyPEM []byte, err error) {
	caPEM, _, certPEM, keyPEM, err = NewServingCertWithCAPEM(hosts, now)
	return caPEM, certPEM, keyPEM, err
}

// NewServingCertWithCAPEM is NewServingCertPEM that also returns the CA's
// private key (PEM, PKCS #8), for a server that must sign more
// certificates with it: the authority's tls-certificate fault serves an
// expired certificate from the CA its clients trust
// (faces.authority.tlsCaKeyFile).
func NewServingCertWithCAPEM(hosts []string, now time.Time) (caPEM, caKeyPEM, certPEM, keyPEM []byte, err error) {
	ca, err := newCA(now)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	cert, err := ca.leaf(leafNames(hosts), now.Add(-time.Hour), now.Add(365*24*time.Hour))
	if err != nil {
		return nil, nil, nil, nil, err
	}
	if caKeyPEM, err = keyPEMOf(ca.key); err != nil {
		return nil, nil, nil, nil, err
	}
	for _, der := range cert.Certificate {
		certPEM = append(certPEM, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
	}
	if keyPEM, err = keyPEMOf(cert.PrivateKey); err != nil {
		return nil, nil, nil, nil, err
	}
	return ca.pem(), caKeyPEM, certPEM, keyPEM, nil
}

// keyPEMOf encodes a private key as PKCS #8 PEM.
func keyPEMOf(key any) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encode private key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}
