package clients

import (
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
)

// Relay gives one client program a loopback address of its own: it
// listens on 127.0.0.N and passes every connection on to the fake from
// that same address, byte for byte, so that the fake's journal records
// the client's address while the client's SDK sees the fake's exact
// behaviour (resets, hangs and slow answers included). It is how
// requests are attributed to a client that cannot be told to tag them.
type Relay struct {
	ln     net.Listener
	source net.IP
	target string

	wg     sync.WaitGroup
	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
}

// loopbackSeq hands out 127.0.0.N addresses; N wraps within 127.0.0.2–
// 127.0.255.254, far more than one run's clients.
var loopbackSeq atomic.Uint32

// NextLoopback returns a loopback address not handed out before in this
// process (127.0.0.1 is left to everything else).
func NextLoopback() net.IP {
	n := loopbackSeq.Add(1)%65000 + 2
	return net.IPv4(127, 0, byte(n>>8), byte(n&0xff))
}

// NewRelay starts a relay to target (HOST:PORT) on a fresh loopback
// address.
func NewRelay(target string) (*Relay, error) {
	src := NextLoopback()
	ln, err := net.Listen("tcp", net.JoinHostPort(src.String(), "0"))
	if err != nil {
		return nil, fmt.Errorf("relay on %s: %w", src, err)
	}
	r := &Relay{ln: ln, source: src, target: target, conns: map[net.Conn]struct{}{}}
	r.wg.Add(1)
	go r.serve()
	return r, nil
}

// Addr is where the client connects: 127.0.0.N:PORT.
func (r *Relay) Addr() string { return r.ln.Addr().String() }

// Source is the address the fake sees the client's requests come from.
func (r *Relay) Source() net.IP { return r.source }

func (r *Relay) serve() {
	defer r.wg.Done()
	for {
		c, err := r.ln.Accept()
		if err != nil {
			return
		}
		r.wg.Add(1)
		go r.pipe(c)
	}
}

func (r *Relay) track(c net.Conn, add bool) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if add {
		if r.closed {
			return false
		}
		r.conns[c] = struct{}{}
	} else {
		delete(r.conns, c)
	}
	return true
}

func (r *Relay) pipe(in net.Conn) {
	defer r.wg.Done()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: r.source}}
	out, err := d.Dial("tcp", r.target)
	if err != nil {
		// The fake refused: refuse the client the same way.
		resetClose(in)
		return
	}
	if !r.track(in, true) || !r.track(out, true) {
		_ = in.Close()
		_ = out.Close()
		return
	}
	defer r.track(in, false)
	defer r.track(out, false)
	errc := make(chan error, 2)
	go func() { errc <- copyHalf(out, in) }()
	go func() { errc <- copyHalf(in, out) }()
	first := <-errc
	if first != nil && !errors.Is(first, net.ErrClosed) {
		// A reset on one side is a reset on the other: a client must see
		// the fake's connection faults as they are.
		resetClose(in)
		resetClose(out)
	}
	<-errc
	_ = in.Close()
	_ = out.Close()
}

// copyHalf copies src to dst and, at src's clean end, half-closes dst so
// that an HTTP/1.1 exchange ends as it would without the relay.
func copyHalf(dst, src net.Conn) error {
	_, err := io.Copy(dst, src)
	if err == nil {
		if tc, ok := dst.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		}
	}
	return err
}

func resetClose(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = c.Close()
}

// Close stops the relay and closes its connections.
func (r *Relay) Close() error {
	err := r.ln.Close()
	r.mu.Lock()
	r.closed = true
	for c := range r.conns {
		_ = c.Close()
	}
	r.mu.Unlock()
	r.wg.Wait()
	return err
}
