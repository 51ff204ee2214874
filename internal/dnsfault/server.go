package dnsfault

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"sync"
	"time"
)

// Config is where the resolver listens and whom it asks.
type Config struct {
	// DNS is the address it answers DNS on, over UDP and TCP (":53" in
	// a pod: resolv.conf cannot name another port).
	DNS string
	// Control is the control API's address. It must be a loopback
	// address: the pods under test reach every other address of the
	// resolver's pod, and must not be able to switch a fault.
	Control string
	// Upstream is the DNS server it forwards to (host:port); empty: the
	// first nameserver of ResolvConf, port 53 (in a pod of the default
	// DNS policy, the cluster's DNS Service).
	Upstream string
	// ResolvConf is the resolver configuration it reads for Upstream and
	// serves at /v1/resolv; empty: /etc/resolv.conf.
	ResolvConf string
	// Logger receives a line per fault set or removed; nil: discarded.
	Logger *slog.Logger
}

// upstreamTimeout bounds one forwarded exchange: the cluster's DNS
// answers in milliseconds, and a client's own timeout is 5 s.
const upstreamTimeout = 4 * time.Second

// tcpIdle closes a DNS-over-TCP connection that sent nothing this long.
const tcpIdle = 30 * time.Second

// Server is the resolver: a DNS forwarder that answers the names of its
// active faults as they say, and a control API on loopback that sets and
// removes the faults.
type Server struct {
	cfg      Config
	upstream string
	resolv   Resolv
	log      *slog.Logger

	mu     sync.Mutex
	faults map[string]*active
	conns  map[net.Conn]struct{}

	udp     net.PacketConn
	tcp     net.Listener
	control net.Listener
	http    *http.Server
	closing chan struct{}
	wg      sync.WaitGroup
}

// active is a fault as the resolver holds it, with how many queries it
// has hit.
type active struct {
	Fault
	hits int
}

// Addrs are the addresses a started server listens on.
type Addrs struct {
	DNS, Control string
}

// New checks cfg and reads the resolver configuration.
func New(cfg Config) (*Server, error) {
	if err := checkControl(cfg.Control); err != nil {
		return nil, err
	}
	if cfg.ResolvConf == "" {
		cfg.ResolvConf = "/etc/resolv.conf"
	}
	rc, err := ReadResolv(cfg.ResolvConf)
	if err != nil {
		return nil, err
	}
	up := cfg.Upstream
	if up == "" {
		if len(rc.Nameservers) == 0 {
			return nil, fmt.Errorf("%s names no nameserver to forward to; give the upstream (--upstream HOST:PORT)", cfg.ResolvConf)
		}
		up = net.JoinHostPort(rc.Nameservers[0], "53")
	}
	if _, _, err := net.SplitHostPort(up); err != nil {
		return nil, fmt.Errorf("upstream %q: want HOST:PORT: %w", up, err)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Server{cfg: cfg, upstream: up, resolv: rc, log: log, faults: map[string]*active{}, conns: map[net.Conn]struct{}{}, closing: make(chan struct{})}, nil
}

// checkControl refuses a control address other than a loopback one.
func checkControl(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("control address %q: want 127.0.0.1:PORT: %w", addr, err)
	}
	ip, err := netip.ParseAddr(host)
	if err != nil || !ip.IsLoopback() {
		return fmt.Errorf("control address %q: want a loopback address such as 127.0.0.1:8053: the pods under test reach the resolver's other addresses and must not be able to switch its faults", addr)
	}
	return nil
}

// Start opens the DNS (UDP and TCP) and control listeners and serves in
// the background; it returns once all are open.
func (s *Server) Start() (Addrs, error) {
	var err error
	if s.udp, err = net.ListenPacket("udp", s.cfg.DNS); err != nil {
		return Addrs{}, fmt.Errorf("DNS over UDP on %s: %w", s.cfg.DNS, err)
	}
	// TCP on the port UDP got, so that ":0" gives one port for both.
	tcpAddr := s.udp.LocalAddr().String()
	if s.tcp, err = net.Listen("tcp", tcpAddr); err != nil {
		s.udp.Close()
		return Addrs{}, fmt.Errorf("DNS over TCP on %s: %w", tcpAddr, err)
	}
	if s.control, err = net.Listen("tcp", s.cfg.Control); err != nil {
		s.udp.Close()
		s.tcp.Close()
		return Addrs{}, fmt.Errorf("control API on %s: %w", s.cfg.Control, err)
	}
	s.http = &http.Server{Handler: s.handler(), ReadHeaderTimeout: 10 * time.Second}
	s.wg.Add(3)
	go func() { defer s.wg.Done(); s.serveUDP() }()
	go func() { defer s.wg.Done(); s.serveTCP() }()
	go func() { defer s.wg.Done(); _ = s.http.Serve(s.control) }()
	return Addrs{DNS: s.udp.LocalAddr().String(), Control: s.control.Addr().String()}, nil
}

// Close stops serving: queries held by a delay are dropped, the control
// API's requests get until ctx ends. Call it once, after Start.
func (s *Server) Close(ctx context.Context) error {
	if s.http == nil {
		return errors.New("dnsfault: Close before Start")
	}
	close(s.closing)
	err := s.http.Shutdown(ctx)
	s.udp.Close()
	s.tcp.Close()
	s.mu.Lock()
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	return err
}

// Run is Start, then serving until ctx ends, then Close.
func (s *Server) Run(ctx context.Context, ready func(Addrs)) error {
	a, err := s.Start()
	if err != nil {
		return err
	}
	if ready != nil {
		ready(a)
	}
	<-ctx.Done()
	c, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return s.Close(c)
}

func (s *Server) serveUDP() {
	buf := make([]byte, 65535)
	for {
		n, from, err := s.udp.ReadFrom(buf)
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			continue
		}
		q := bytes.Clone(buf[:n])
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			if a := s.answer(q, "udp"); a != nil {
				_, _ = s.udp.WriteTo(a, from)
			}
		}()
	}
}

func (s *Server) serveTCP() {
	for {
		c, err := s.tcp.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		s.conns[c] = struct{}{}
		s.mu.Unlock()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.serveConn(c)
			s.mu.Lock()
			delete(s.conns, c)
			s.mu.Unlock()
		}()
	}
}

// serveConn answers the queries of one TCP connection, each as soon as
// it is ready (RFC 7766 allows answers out of order).
func (s *Server) serveConn(c net.Conn) {
	defer c.Close()
	var write sync.Mutex
	for {
		_ = c.SetReadDeadline(time.Now().Add(tcpIdle))
		q, err := readTCP(c)
		if err != nil {
			return
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			if a := s.answer(q, "tcp"); a != nil {
				write.Lock()
				_ = writeTCP(c, a)
				write.Unlock()
			}
		}()
	}
}

// answer returns the answer to query q, after a fault's delay; nil
// drops it (the server is closing, or q is not a query at all).
func (s *Server) answer(q []byte, network string) []byte {
	name, _, err := question(q)
	if err != nil {
		// Not one query with one question: forward it unchanged and let
		// the cluster's DNS answer what it makes of it.
		a, _ := s.forward(q, network)
		return a
	}
	e := s.hit(name, time.Now())
	if e.delay > 0 {
		t := time.NewTimer(e.delay)
		select {
		case <-t.C:
		case <-s.closing:
			t.Stop()
			return nil
		}
	}
	if e.nxdomain {
		a, _ := reply(q, rcodeNXDomain)
		return a
	}
	a, err := s.forward(q, network)
	if err != nil {
		s.log.Warn("forward", "name", name, "upstream", s.upstream, "err", err)
		// What a forwarder whose upstream fails answers.
		a, _ = reply(q, rcodeServFail)
	}
	return a
}

// hit returns what the active faults do to a query for name, counting
// it for each fault it matches; faults past their Until are forgotten.
func (s *Server) hit(name string, now time.Time) effect {
	s.mu.Lock()
	defer s.mu.Unlock()
	var e effect
	for id, f := range s.faults {
		if !now.Before(f.Until) {
			s.log.Info("fault expired", "fault", id, "hits", f.hits)
			delete(s.faults, id)
			continue
		}
		if f.matches(name) {
			f.hits++
			e.nxdomain = e.nxdomain || f.NXDomain
			e.delay = max(e.delay, f.Delay.Duration)
		}
	}
	return e
}

// forward asks the upstream q over network and returns its answer.
func (s *Server) forward(q []byte, network string) ([]byte, error) {
	c, err := net.DialTimeout(network, s.upstream, upstreamTimeout)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(upstreamTimeout))
	if network == "tcp" {
		if err := writeTCP(c, q); err != nil {
			return nil, err
		}
		return readTCP(c)
	}
	if _, err := c.Write(q); err != nil {
		return nil, err
	}
	buf := make([]byte, 65535)
	for {
		n, err := c.Read(buf)
		if err != nil {
			return nil, err
		}
		// A stray datagram with another ID is not this answer.
		if n >= headerLen && bytes.Equal(buf[:2], q[:2]) {
			return bytes.Clone(buf[:n]), nil
		}
	}
}

// readTCP reads one length-prefixed DNS message.
func readTCP(r io.Reader) ([]byte, error) {
	var l [2]byte
	if _, err := io.ReadFull(r, l[:]); err != nil {
		return nil, err
	}
	msg := make([]byte, binary.BigEndian.Uint16(l[:]))
	if _, err := io.ReadFull(r, msg); err != nil {
		return nil, err
	}
	return msg, nil
}

// writeTCP writes one length-prefixed DNS message.
func writeTCP(w io.Writer, msg []byte) error {
	b := binary.BigEndian.AppendUint16(make([]byte, 0, 2+len(msg)), uint16(len(msg)))
	_, err := w.Write(append(b, msg...))
	return err
}

// Resolv is what a resolv.conf says: the resolver serves its own, which
// in its pod is what the cluster gives every pod of the namespace, so
// that the pods pointed at it keep the cluster's search list and ndots.
type Resolv struct {
	Nameservers []string `json:"nameservers"`
	Search      []string `json:"search"`
	// Options are as written: "ndots:5", "edns0".
	Options []string `json:"options"`
}

// ReadResolv reads a resolv.conf.
func ReadResolv(path string) (Resolv, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Resolv{}, fmt.Errorf("read the resolver configuration: %w", err)
	}
	var r Resolv
	for line := range strings.Lines(string(b)) {
		f := strings.Fields(line)
		if len(f) < 2 || strings.HasPrefix(f[0], "#") || strings.HasPrefix(f[0], ";") {
			continue
		}
		switch f[0] {
		case "nameserver":
			r.Nameservers = append(r.Nameservers, f[1])
		case "search", "domain":
			r.Search = f[1:]
		case "options":
			r.Options = append(r.Options, f[1:]...)
		}
	}
	return r, nil
}

// The control API. Faults are keyed by a name of the caller's (a
// scenario step's), so that two can overlap.
const (
	pathHealth = "/healthz"
	pathResolv = "/v1/resolv"
	pathFaults = "/v1/faults/"
)

// Removed is the answer to a fault's removal: how many queries it hit.
type Removed struct {
	Hits int `json:"hits"`
}

func (s *Server) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+pathHealth, func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok\n") })
	mux.HandleFunc("GET "+pathResolv, func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, s.resolv) })
	mux.HandleFunc("PUT "+pathFaults+"{id}", func(w http.ResponseWriter, r *http.Request) {
		var f Fault
		dec := json.NewDecoder(io.LimitReader(r.Body, 64<<10))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&f); err != nil {
			http.Error(w, "fault: "+err.Error(), http.StatusBadRequest)
			return
		}
		if err := f.Validate(time.Now()); err != nil {
			http.Error(w, "fault: "+err.Error(), http.StatusBadRequest)
			return
		}
		id := r.PathValue("id")
		s.mu.Lock()
		s.faults[id] = &active{Fault: f}
		s.mu.Unlock()
		s.log.Info("fault set", "fault", id, "names", f.Names, "nxdomain", f.NXDomain, "delay", f.Delay.Duration, "until", f.Until)
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("DELETE "+pathFaults+"{id}", func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		s.mu.Lock()
		f, ok := s.faults[id]
		delete(s.faults, id)
		s.mu.Unlock()
		if !ok {
			http.Error(w, "no fault "+id+" (it may have expired)", http.StatusNotFound)
			return
		}
		s.log.Info("fault removed", "fault", id, "hits", f.hits)
		writeJSON(w, Removed{Hits: f.hits})
	})
	return mux
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}
