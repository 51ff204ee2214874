package fakeimds

// HTTPS for the authority face. MSAL-based clients (azidentity's
// WorkloadIdentityCredential among them) refuse an authority host that is
// not https, so the authority also listens on Listen.AuthorityTLS. With
// tlsCertFile and tlsKeyFile set, that certificate is served. Otherwise
// the server makes a throwaway CA at start, signs a server certificate for
// localhost, 127.0.0.1, ::1 and the configured tlsHosts with it, and writes
// the CA certificate to {tlsDir}/ca.crt: point clients at it (for Go,
// OpenSSL and Python clients SSL_CERT_FILE={tlsDir}/ca.crt; for Node
// NODE_EXTRA_CA_CERTS) so they trust the fake authority.

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// CAFileName is the name of the generated CA certificate under tlsDir.
const CAFileName = "ca.crt"

// serverTLS returns the HTTPS listener's TLS configuration, loading or
// generating the certificate on first use; later calls return the same
// one, so the CA on disk stays the one being served.
func (a *authority) serverTLS() (*tls.Config, error) {
	a.tlsOnce.Do(func() {
		var cert tls.Certificate
		var err error
		if a.cfg.TLSCertFile != "" {
			cert, err = tls.LoadX509KeyPair(a.cfg.TLSCertFile, a.cfg.TLSKeyFile)
			if err != nil {
				err = fmt.Errorf("authority TLS: load %s and %s: %w", a.cfg.TLSCertFile, a.cfg.TLSKeyFile, err)
			}
		} else {
			cert, err = a.generateTLS()
		}
		if err != nil {
			a.tlsErr = err
			return
		}
		a.tlsCfg = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	})
	return a.tlsCfg, a.tlsErr
}

// generateTLS makes a CA and a server certificate signed by it, and
// writes the CA certificate where clients can find it.
func (a *authority) generateTLS() (tls.Certificate, error) {
	if a.cfg.TLSDir == "" {
		return tls.Certificate{}, fmt.Errorf("authority TLS: set faces.authority.tlsDir (where ca.crt is written) or tlsCertFile and tlsKeyFile")
	}
	caPEM, cert, err := newCAAndLeaf(a.cfg.TLSHosts, time.Now())
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("authority TLS: %w", err)
	}
	if err := writeFileAtomic(filepath.Join(a.cfg.TLSDir, CAFileName), caPEM); err != nil {
		return tls.Certificate{}, fmt.Errorf("authority TLS: write CA certificate: %w", err)
	}
	a.log.Info("generated authority TLS certificate", "ca", filepath.Join(a.cfg.TLSDir, CAFileName), "extraHosts", a.cfg.TLSHosts)
	return cert, nil
}

// newCAAndLeaf returns a new CA certificate (PEM) and a server
// certificate, chained to it, for localhost, the loopback addresses and
// hosts. ECDSA P-256 keeps start-up fast.
func newCAAndLeaf(hosts []string, now time.Time) ([]byte, tls.Certificate, error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, tls.Certificate{}, fmt.Errorf("generate CA key: %w", err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          randomSerial(),
		Subject:               pkix.Name{CommonName: "fakeimds authority CA", Organization: []string{"idharness"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, tls.Certificate{}, fmt.Errorf("self-sign CA certificate: %w", err)
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, tls.Certificate{}, fmt.Errorf("parse CA certificate: %w", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, tls.Certificate{}, fmt.Errorf("generate server key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: randomSerial(),
		Subject:      pkix.Name{CommonName: "fakeimds authority", Organization: []string{"idharness"}},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		return nil, tls.Certificate{}, fmt.Errorf("sign server certificate: %w", err)
	}
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})
	return caPEM, tls.Certificate{Certificate: [][]byte{der, caDER}, PrivateKey: key}, nil
}

func randomSerial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		// crypto/rand does not fail on supported platforms; a fixed serial
		// is still a valid certificate.
		return big.NewInt(1)
	}
	return n
}

// writeFileAtomic writes b to path through a temporary file and a rename,
// so a client never reads a half-written CA certificate.
func writeFileAtomic(path string, b []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	f, err := os.CreateTemp(dir, ".ca-*.tmp")
	if err != nil {
		return fmt.Errorf("create temporary file in %s: %w", dir, err)
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if _, err := f.Write(b); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	if err := f.Chmod(0o644); err != nil {
		f.Close()
		return fmt.Errorf("chmod %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("rename to %s: %w", path, err)
	}
	return nil
}
