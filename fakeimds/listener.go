package fakeimds

import (
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/idharness/idharness/fakeimds/chaos"
	"github.com/idharness/idharness/fakeimds/journal"
)

// faultListener carries the listener-level faults: while a refuse rule is
// active for one of its faces the socket is closed, so clients get
// "connection refused", and reopened on the same address after; while a
// blackhole rule is active, connections are accepted and never read, and
// the keep-alive connections clients already hold stop being read too: a
// partition does not spare pooled connections.
type faultListener struct {
	s     *Server
	faces []string
	addr  string
	// handshakes: the listener serves TLS, so tls-certificate rules
	// apply to its connections.
	handshakes bool

	mu      sync.Mutex
	ln      net.Listener // nil while refusing
	closed  bool
	refusal string // name of the refuse rule in force
	held    map[net.Conn]struct{}
	// open are the connections handed to the server, so that an outage
	// also cuts the keep-alive connections clients already hold.
	open map[*trackedConn]struct{}
	// hole is closed when the blackhole in force ends; nil when none is.
	hole    chan struct{}
	wake    chan struct{} // the socket is open again
	changed chan struct{} // the rule set changed
	done    chan struct{}
	// deadlines enforces the open connections' read deadlines
	// (deadline.go).
	deadlines *deadlineTimer
}

func newFaultListener(s *Server, ln net.Listener, faces []string, handshakes bool) *faultListener {
	l := &faultListener{s: s, faces: faces, handshakes: handshakes, addr: ln.Addr().String(), ln: ln, held: map[net.Conn]struct{}{}, open: map[*trackedConn]struct{}{},
		wake: make(chan struct{}, 1), changed: make(chan struct{}, 1), done: make(chan struct{}), deadlines: &deadlineTimer{}}
	s.engine.OnChange(func() {
		select {
		case l.changed <- struct{}{}:
		default:
		}
	})
	go l.watch()
	return l
}

// fault returns the active listener-level rule for this listener's faces.
func (l *faultListener) fault() (string, chaos.Fault) {
	for _, f := range l.faces {
		if name, fault := l.s.engine.ListenerFault(f); fault != nil {
			return name, fault
		}
	}
	return "", nil
}

// watch closes or reopens the socket as refuse rules start and end: it
// wakes when rules change and when the next scheduled start or end is due.
func (l *faultListener) watch() {
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-l.done:
			return
		case <-t.C:
		case <-l.changed:
		}
		l.apply()
		if !t.Stop() {
			select {
			case <-t.C:
			default:
			}
		}
		if next := l.s.engine.NextChange(); !next.IsZero() {
			t.Reset(time.Until(next))
		}
	}
}

// apply brings the socket and held connections in line with the rules now.
func (l *faultListener) apply() {
	name, f := l.fault()
	_, refuse := f.(*chaos.Refuse)
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return
	}
	switch {
	case refuse && l.ln != nil:
		_ = l.ln.Close()
		l.ln, l.refusal = nil, name
		for c := range l.open {
			_ = c.Conn.Close()
			delete(l.open, c)
		}
		l.s.journal.Add(journal.Entry{Time: time.Now(), Face: l.faces[0], Faults: []string{name}, Error: "listener down: connections refused"})
		l.s.log.Info("listener refusing connections", "addr", l.addr, "rule", name)
	case !refuse && l.ln == nil && !l.closed:
		ln, err := net.Listen("tcp", l.addr)
		if err != nil {
			l.s.log.Warn("reopen listener after refuse rule", "addr", l.addr, "err", err)
			break
		}
		l.ln, l.refusal = ln, ""
		l.s.log.Info("listener accepting again", "addr", l.addr)
		select {
		case l.wake <- struct{}{}:
		default:
		}
	}
	// A tls-certificate rule that starts applies to new handshakes only:
	// connections made before it, which clients would go on reusing, are
	// closed, so the next request of every matched client meets the new
	// certificate, as it would meet a changed certificate on reconnecting.
	for c := range l.open {
		if r := l.handshakeRule(c.Conn); r != "" && r != c.handshakeRule {
			_ = c.Conn.Close()
			delete(l.open, c)
		}
	}
	_, hole := f.(*chaos.Blackhole)
	if !hole && len(l.held) > 0 {
		for c := range l.held {
			_ = c.Close()
			delete(l.held, c)
		}
	}
	switch {
	case hole && l.hole == nil:
		l.hole = make(chan struct{})
		// Wake the server's pending reads on open connections; Read then
		// holds them until the blackhole ends.
		for c := range l.open {
			c.kick()
		}
	case !hole && l.hole != nil:
		close(l.hole)
		l.hole = nil
	}
	l.mu.Unlock()
}

// Accept returns the next connection that is not refused or blackholed.
func (l *faultListener) Accept() (net.Conn, error) {
	for {
		l.mu.Lock()
		ln, closed := l.ln, l.closed
		l.mu.Unlock()
		if closed {
			return nil, net.ErrClosed
		}
		if ln == nil {
			select {
			case <-l.wake:
			case <-l.done:
			}
			continue
		}
		c, err := ln.Accept()
		if err != nil {
			l.mu.Lock()
			refusing, closed := l.ln == nil, l.closed
			l.mu.Unlock()
			if refusing && !closed {
				continue
			}
			return nil, err
		}
		if name, f := l.fault(); f != nil {
			if hole, ok := f.(*chaos.Blackhole); ok {
				if !l.hold(c, name, hole.Max.Duration) {
					return nil, net.ErrClosed
				}
				continue
			}
		}
		tc := &trackedConn{Conn: c, l: l, handshakeRule: l.handshakeRule(c)}
		l.mu.Lock()
		// A connection the kernel completed while Close ran: the server
		// is going away, so it gets no new connections.
		if l.closed {
			l.mu.Unlock()
			_ = c.Close()
			return nil, net.ErrClosed
		}
		l.open[tc] = struct{}{}
		l.mu.Unlock()
		return tc, nil
	}
}

// trackedConn removes itself from its listener's open set when closed,
// and stops reading while a blackhole is in force.
type trackedConn struct {
	net.Conn
	l *faultListener
	// kicked: a blackhole cut this connection's read short.
	kicked atomic.Bool
	// handshakeRule names the tls-certificate rule in force for the
	// connection when it was accepted ("": none).
	handshakeRule string

	// dmu guards the read deadline (deadline.go): deadline, zero for
	// none; socketPast, the socket's own deadline is set and passed.
	dmu        sync.Mutex
	deadline   time.Time
	socketPast bool
}

// Read reads, unless a blackhole started: then it holds the connection
// unread until the blackhole ends and closes it, as the listener does
// with connections accepted during one.
func (c *trackedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if err == nil || !c.kicked.Load() {
		return n, err
	}
	c.l.mu.Lock()
	hole, done := c.l.hole, c.l.done
	c.l.mu.Unlock()
	if hole != nil {
		select {
		case <-hole:
		case <-done:
		}
	}
	_ = c.Close()
	return n, net.ErrClosed
}

// SetLinger passes through to the TCP connection, so that a reset fault
// can still abort with RST.
func (c *trackedConn) SetLinger(sec int) error {
	if tc, ok := c.Conn.(*net.TCPConn); ok {
		return tc.SetLinger(sec)
	}
	return nil
}

func (c *trackedConn) Close() error {
	c.l.mu.Lock()
	delete(c.l.open, c)
	c.l.mu.Unlock()
	return c.Conn.Close()
}

// hold keeps a blackholed connection open, unread, until the rule ends
// or max passes. It reports false, having closed c, when the listener was
// closed first: Close has already dropped the held connections, and one
// held after it would stay open until max.
func (l *faultListener) hold(c net.Conn, rule string, max time.Duration) bool {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		_ = c.Close()
		return false
	}
	l.held[c] = struct{}{}
	l.mu.Unlock()
	l.s.journal.Add(journal.Entry{Time: time.Now(), Face: l.faces[0], Remote: c.RemoteAddr().String(), Faults: []string{rule}, Error: "blackholed: accepted, never read"})
	time.AfterFunc(max, func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		if _, ok := l.held[c]; ok {
			_ = c.Close()
			delete(l.held, c)
		}
	})
	return true
}

// Close stops the listener and drops held connections.
func (l *faultListener) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	l.closed = true
	close(l.done)
	if l.hole != nil {
		close(l.hole)
		l.hole = nil
	}
	for c := range l.held {
		_ = c.Close()
	}
	// Emptied, not set to nil: Accept may still be handing over a
	// connection it took before Close, and hold checks closed under mu.
	clear(l.held)
	if l.ln != nil {
		return l.ln.Close()
	}
	return nil
}

// Addr returns the listening address.
func (l *faultListener) Addr() net.Addr {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ln != nil {
		return l.ln.Addr()
	}
	a, _ := net.ResolveTCPAddr("tcp", l.addr)
	return a
}

// handshakeRule names the tls-certificate rule in force for a connection
// from c's client, on any of the listener's faces.
func (l *faultListener) handshakeRule(c net.Conn) string {
	if !l.handshakes || l.s.engine.Len() == 0 {
		return ""
	}
	src := addrOf(c.RemoteAddr())
	for _, f := range l.faces {
		if r := l.s.engine.HandshakeRule(f, src); r != "" {
			return r
		}
	}
	return ""
}
