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
	caPEM, cert, err := newCAAndLeaf(hosts, now)
	if err != nil {
		return nil, nil, nil, err
	}
	for _, der := range cert.Certificate {
		certPEM = append(certPEM, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("encode server key: %w", err)
	}
	keyPEM = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	return caPEM, certPEM, keyPEM, nil
}
