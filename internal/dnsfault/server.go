package dnsfault

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"time"
)

// Config is where the resolver listens, whom it asks and where it reads
// its faults.
type Config struct {
	// DNS is the address it answers DNS on, over UDP and TCP (":53" in
	// a pod: resolv.conf cannot name another port). It listens on
	// nothing else.
	DNS string
	// Upstream is the DNS server it forwards to (host:port); empty: the
	// first nameserver of ResolvConf, port 53 (in a pod of the default
	// DNS policy, the cluster's DNS Service).
	Upstream string
	// ResolvConf is the resolver configuration it reads for Upstream and
	// reports in its ready event; empty: /etc/resolv.conf.
	ResolvConf string
	// FaultsFile holds the faults in force, a State in JSON (in its pod,
	// FaultsFile: the downward API file of FaultsAnnotation); missing or
	// empty: none. The resolver reads it every FaultsPoll.
	FaultsFile string
	// Events receives the resolver's events, a JSON line each (Event);
	// nil: discarded.
	Events io.Writer
}

// upstreamTimeout bounds one forwarded exchange: the cluster's DNS
// answers in milliseconds, and a client's own timeout is 5 s.
const upstreamTimeout = 4 * time.Second

// tcpIdle closes a DNS-over-TCP connection that sent nothing this long.
const tcpIdle = 30 * time.Second

// Server is the resolver: a DNS forwarder that answers the names of its
// active faults as they say, and takes its faults from a file.
type Server struct {
	cfg      Config
	upstream string
	resolv   Resolv

	mu     sync.Mutex
	faults map[string]*active
	conns  map[net.Conn]struct{}
	// read is the faults file's content last read.
	read string

	evMu   sync.Mutex
	events *json.Encoder

	udp     net.PacketConn
	tcp     net.Listener
	closing chan struct{}
	wg      sync.WaitGroup
}

// active is a fault as the resolver holds it, with how many queries it
// has hit.
type active struct {
	Fault
	hits int
}

// New checks cfg and reads the resolver configuration.
func New(cfg Config) (*Server, error) {
	if cfg.FaultsFile == "" {
		return nil, errors.New("no faults file: give the file that holds the faults (--faults-file)")
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
	w := cfg.Events
	if w == nil {
		w = io.Discard
	}
	return &Server{cfg: cfg, upstream: up, resolv: rc, events: json.NewEncoder(w), faults: map[string]*active{}, conns: map[net.Conn]struct{}{}, closing: make(chan struct{})}, nil
}

// Start opens the DNS listeners (UDP and TCP), serves in the background
// and reads the faults file; it returns once both listen, with their
// address, and writes the ready event.
func (s *Server) Start() (string, error) {
	var err error
	if s.udp, err = net.ListenPacket("udp", s.cfg.DNS); err != nil {
		return "", fmt.Errorf("DNS over UDP on %s: %w", s.cfg.DNS, err)
	}
	// TCP on the port UDP got, so that ":0" gives one port for both.
	addr := s.udp.LocalAddr().String()
	if s.tcp, err = net.Listen("tcp", addr); err != nil {
		s.udp.Close()
		return "", fmt.Errorf("DNS over TCP on %s: %w", addr, err)
	}
	s.wg.Add(3)
	go func() { defer s.wg.Done(); s.serveUDP() }()
	go func() { defer s.wg.Done(); s.serveTCP() }()
	go func() { defer s.wg.Done(); s.watch() }()
	s.emit(Event{Event: EventReady, DNS: addr, Resolv: &s.resolv})
	return addr, nil
}

// Close stops serving: queries held by a delay are dropped. Call it
// once, after Start.
func (s *Server) Close() error {
	if s.udp == nil {
		return errors.New("dnsfault: Close before Start")
	}
	close(s.closing)
	s.udp.Close()
	s.tcp.Close()
	s.mu.Lock()
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	return nil
}

// Run is Start, then serving until ctx ends, then Close.
func (s *Server) Run(ctx context.Context) error {
	if _, err := s.Start(); err != nil {
		return err
	}
	<-ctx.Done()
	return s.Close()
}

// emit writes one event, stamped now unless it has a time.
func (s *Server) emit(e Event) {
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	e.Time = e.Time.UTC()
	s.evMu.Lock()
	defer s.evMu.Unlock()
	_ = s.events.Encode(e)
}

// watch reads the faults file every FaultsPoll, applies what changed
// and ends the faults past their Until, until the server closes.
func (s *Server) watch() {
	t := time.NewTicker(FaultsPoll)
	defer t.Stop()
	for {
		s.expire(time.Now())
		s.readFaults(time.Now())
		select {
		case <-s.closing:
			return
		case <-t.C:
		}
	}
}

// readFaults reads the faults file and, when it changed, applies it.
func (s *Server) readFaults(now time.Time) {
	b, err := os.ReadFile(s.cfg.FaultsFile)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		s.mu.Lock()
		changed := s.read != "\x00"+err.Error()
		s.read = "\x00" + err.Error()
		s.mu.Unlock()
		if changed {
			s.emit(Event{Event: EventRejected, Error: "read the faults file: " + err.Error()})
		}
		return
	}
	text := strings.TrimSpace(string(b))
	s.mu.Lock()
	if text == s.read {
		s.mu.Unlock()
		return
	}
	s.read = text
	s.mu.Unlock()
	var st State
	if text != "" {
		dec := json.NewDecoder(strings.NewReader(text))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&st); err != nil {
			s.emit(Event{Event: EventRejected, Seq: seqOf(text), Error: "the faults file: " + err.Error()})
			return
		}
	}
	s.apply(st, now)
}

// seqOf is a State's sequence number as far as it can be read.
func seqOf(text string) int {
	var v struct {
		Seq int `json:"seq"`
	}
	_ = json.Unmarshal([]byte(text), &v)
	return v.Seq
}

// apply makes st's faults the active ones: it removes the faults st
// lacks, applies the new or changed ones that are valid, and reports
// each change and then the state.
func (s *Server) apply(st State, now time.Time) {
	s.mu.Lock()
	var evs []Event
	for _, id := range slices.Sorted(maps.Keys(s.faults)) {
		f := s.faults[id]
		if g, ok := st.Faults[id]; ok && g.equal(f.Fault) {
			continue
		}
		if _, ok := st.Faults[id]; !ok {
			delete(s.faults, id)
			evs = append(evs, Event{Event: EventRemoved, Seq: st.Seq, Fault: id, Hits: f.hits})
		}
	}
	for _, id := range slices.Sorted(maps.Keys(st.Faults)) {
		f := st.Faults[id]
		if a, ok := s.faults[id]; ok && a.equal(f) {
			continue
		}
		if err := f.Validate(now); err != nil {
			evs = append(evs, Event{Event: EventRejected, Seq: st.Seq, Fault: id, Error: err.Error()})
			continue
		}
		if a, ok := s.faults[id]; ok {
			evs = append(evs, Event{Event: EventRemoved, Seq: st.Seq, Fault: id, Hits: a.hits})
		}
		s.faults[id] = &active{Fault: f}
		evs = append(evs, Event{Event: EventApplied, Seq: st.Seq, Fault: id, Spec: &f})
	}
	evs = append(evs, Event{Event: EventState, Seq: st.Seq, Active: slices.Sorted(maps.Keys(s.faults))})
	s.mu.Unlock()
	for _, e := range evs {
		e.Time = now
		s.emit(e)
	}
}

// expire ends the faults past their Until.
func (s *Server) expire(now time.Time) {
	s.mu.Lock()
	var evs []Event
	for _, id := range slices.Sorted(maps.Keys(s.faults)) {
		if f := s.faults[id]; !now.Before(f.Until) {
			delete(s.faults, id)
			evs = append(evs, Event{Event: EventExpired, Fault: id, Hits: f.hits})
		}
	}
	s.mu.Unlock()
	for _, e := range evs {
		s.emit(e)
	}
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
		s.emit(Event{Event: EventForwardFailed, Name: name, Error: err.Error()})
		// What a forwarder whose upstream fails answers.
		a, _ = reply(q, rcodeServFail)
	}
	return a
}

// hit returns what the active faults do to a query for name, counting
// it for each fault it matches; faults past their Until do nothing.
func (s *Server) hit(name string, now time.Time) effect {
	s.mu.Lock()
	defer s.mu.Unlock()
	var e effect
	for _, f := range s.faults {
		if !now.Before(f.Until) {
			continue // expire reports it
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

// Resolv is what a resolv.conf says: the resolver reports its own, which
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
