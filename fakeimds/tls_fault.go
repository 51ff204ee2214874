package fakeimds

// The tls-certificate fault: while such a rule is active, the
// authority's HTTPS listener presents another certificate in the
// handshakes of the clients it matches — one from a CA nobody trusts, or
// one from the trusted CA that has expired — so that clients meet the
// TLS errors of a TLS-intercepting proxy or a certificate nobody renewed.

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/idharness/idharness/fakeimds/chaos"
	"github.com/idharness/idharness/fakeimds/journal"
)

// withCertificateFaults returns base with the certificate chosen per
// handshake: the served one, or a tls-certificate rule's.
func (s *Server) withCertificateFaults(base *tls.Config) *tls.Config {
	cfg := base.Clone()
	served := base.Certificates[0]
	cfg.Certificates = nil
	cfg.GetCertificate = func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
		remote := ""
		var src netip.Addr
		if hello.Conn != nil {
			remote = hello.Conn.RemoteAddr().String()
			src = addrOf(hello.Conn.RemoteAddr())
		}
		name, f := s.engine.HandshakeFault(FaceAuthority, src)
		tf, ok := f.(*chaos.TLSCertificate)
		if !ok {
			return &served, nil
		}
		cert, err := s.auth.faultCertificate(served, tf.Certificate, time.Now())
		e := journal.Entry{Time: time.Now(), Face: FaceAuthority, Remote: remote, Faults: []string{name},
			Error: "TLS handshake: presented the " + tf.Certificate + " certificate"}
		if err != nil {
			e.Error = "TLS handshake: " + err.Error()
			s.log.Error("tls-certificate fault", "rule", name, "err", err)
		}
		s.journal.Add(e)
		return cert, err
	}
	return cfg
}

// addrOf returns a TCP address's IP; the zero Addr for any other.
func addrOf(a net.Addr) netip.Addr {
	if t, ok := a.(*net.TCPAddr); ok {
		if ip, ok := netip.AddrFromSlice(t.IP); ok {
			return ip.Unmap()
		}
	}
	return netip.Addr{}
}

// faultCertificate returns the certificate of kind for the names served
// covers, made on first use.
func (a *authority) faultCertificate(served tls.Certificate, kind string, now time.Time) (*tls.Certificate, error) {
	a.faultMu.Lock()
	defer a.faultMu.Unlock()
	if c, ok := a.faultCerts[kind]; ok {
		return c, nil
	}
	leaf, err := x509.ParseCertificate(served.Certificate[0])
	if err != nil {
		return nil, fmt.Errorf("read the served certificate: %w", err)
	}
	names := certNames{dns: leaf.DNSNames, ips: leaf.IPAddresses}
	var cert tls.Certificate
	switch kind {
	case chaos.CertUntrusted:
		ca, err := newCA(now)
		if err != nil {
			return nil, err
		}
		cert, err = ca.leaf(names, now.Add(-time.Hour), now.Add(365*24*time.Hour))
		if err != nil {
			return nil, err
		}
	case chaos.CertExpired:
		if a.ca == nil {
			return nil, fmt.Errorf("no expired certificate: the authority does not know the CA of %s; set faces.authority.tlsCaFile and tlsCaKeyFile", a.cfg.TLSCertFile)
		}
		// Valid for an hour, ended an hour ago: past any clock skew a
		// client allows.
		cert, err = a.ca.leaf(names, now.Add(-2*time.Hour), now.Add(-time.Hour))
		if err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("unknown certificate %q", kind)
	}
	if a.faultCerts == nil {
		a.faultCerts = map[string]*tls.Certificate{}
	}
	a.faultCerts[kind] = &cert
	return &cert, nil
}
