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
	"crypto"
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
			if err == nil && a.cfg.TLSCAFile != "" {
				a.ca, err = loadCA(a.cfg.TLSCAFile, a.cfg.TLSCAKeyFile)
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
	now := time.Now()
	ca, err := newCA(now)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("authority TLS: %w", err)
	}
	cert, err := ca.leaf(leafNames(a.cfg.TLSHosts), now.Add(-time.Hour), now.Add(365*24*time.Hour))
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("authority TLS: %w", err)
	}
	// Kept for a tls-certificate fault's expired certificate.
	a.ca = ca
	if err := writeFileAtomic(filepath.Join(a.cfg.TLSDir, CAFileName), ca.pem()); err != nil {
		return tls.Certificate{}, fmt.Errorf("authority TLS: write CA certificate: %w", err)
	}
	a.log.Info("generated authority TLS certificate", "ca", filepath.Join(a.cfg.TLSDir, CAFileName), "extraHosts", a.cfg.TLSHosts)
	return cert, nil
}

// newCAAndLeaf returns a new CA certificate (PEM) and a server
// certificate, chained to it, for localhost, the loopback addresses and
// hosts. ECDSA P-256 keeps start-up fast.
func newCAAndLeaf(hosts []string, now time.Time) ([]byte, tls.Certificate, error) {
	ca, err := newCA(now)
	if err != nil {
		return nil, tls.Certificate{}, err
	}
	cert, err := ca.leaf(leafNames(hosts), now.Add(-time.Hour), now.Add(365*24*time.Hour))
	if err != nil {
		return nil, tls.Certificate{}, err
	}
	return ca.pem(), cert, nil
}

// certAuthority is a CA that signs server certificates.
type certAuthority struct {
	cert *x509.Certificate
	key  crypto.Signer
}

// newCA makes a CA valid for a year from an hour before now.
func newCA(now time.Time) (*certAuthority, error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate CA key: %w", err)
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
		return nil, fmt.Errorf("self-sign CA certificate: %w", err)
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, fmt.Errorf("parse CA certificate: %w", err)
	}
	return &certAuthority{cert: caCert, key: caKey}, nil
}

// loadCA reads a CA's certificate and private key (PEM; the key PKCS #8,
// EC or PKCS #1).
func loadCA(certFile, keyFile string) (*certAuthority, error) {
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("authority TLS: load the CA %s and %s: %w", certFile, keyFile, err)
	}
	cert, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return nil, fmt.Errorf("authority TLS: parse the CA %s: %w", certFile, err)
	}
	key, ok := pair.PrivateKey.(crypto.Signer)
	if !ok || !cert.IsCA {
		return nil, fmt.Errorf("authority TLS: %s is not a CA certificate with a signing key in %s", certFile, keyFile)
	}
	return &certAuthority{cert: cert, key: key}, nil
}

// pem returns the CA's certificate as PEM.
func (ca *certAuthority) pem() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.cert.Raw})
}

// certNames are the names a server certificate covers.
type certNames struct {
	dns []string
	ips []net.IP
}

// leafNames returns localhost, the loopback addresses and hosts.
func leafNames(hosts []string) certNames {
	n := certNames{dns: []string{"localhost"}, ips: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			n.ips = append(n.ips, ip)
		} else {
			n.dns = append(n.dns, h)
		}
	}
	return n
}

// leaf signs a server certificate for names, valid from notBefore to
// notAfter, with a key of its own.
func (ca *certAuthority) leaf(names certNames, notBefore, notAfter time.Time) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("generate server key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: randomSerial(),
		Subject:      pkix.Name{CommonName: "fakeimds authority", Organization: []string{"idharness"}},
		NotBefore:    notBefore,
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     names.dns,
		IPAddresses:  names.ips,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("sign server certificate: %w", err)
	}
	return tls.Certificate{Certificate: [][]byte{der, ca.cert.Raw}, PrivateKey: key}, nil
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
