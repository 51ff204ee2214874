package fakeimds

import (
	"sync"
	"sync/atomic"
	"time"
)

// A faultListener's connections keep the read deadlines net/http sets as
// numbers, and one timer per listener, armed at the earliest of them,
// enforces them: when it fires, every connection whose deadline has passed
// gets its socket's deadline set in the past, which fails its pending and
// next reads exactly as the deadline itself would have.
//
// Why: the idle (90 s) and header (10 s) timeouts make net/http set a
// future read deadline twice per request and clear it once, and each of
// those armed, moved or stopped a runtime timer in the socket's poller:
// about 1,800 instructions of a cached token's ~53,000
// (docs/performance.md). Here a deadline set in the future is a store
// under the connection's own lock, and the listener's timer moves only
// when a deadline earlier than its own comes (a connection's first, or
// one after the timer found none) or when it fires.
//
// The guarantee is the same: a read fails once its deadline has passed,
// and not before, and the deadline is enforced when the listener's timer
// runs at it (a runtime timer too, as the socket's own was). A deadline
// already past when it is set (net/http's "a long time ago", which
// interrupts its background read) goes to the socket at once, as before.
// Write deadlines go to the socket unchanged: fakeimds sets no write
// timeout, so net/http only clears them. The timer outlives the listener's
// Close, as the sockets' timers did, for the connections still open.

// deadlineTimer is a listener's timer of its connections' read deadlines.
type deadlineTimer struct {
	// next is when the timer fires; nil: never. Every deadline a
	// connection keeps is at or after it. Written under mu. A time, not a
	// count of nanoseconds, so that the check of a deadline against it
	// compares the monotonic clock readings (time.Time.Before) without
	// converting them (Sub was a tenth of the cost of a deadline set).
	next  atomic.Pointer[time.Time]
	mu    sync.Mutex
	timer *time.Timer
	// sweeping serialises sweeps: a timer reset while one runs starts
	// another.
	sweeping sync.Mutex
}

// covers reports whether the timer fires at or before t.
func (d *deadlineTimer) covers(t time.Time) bool {
	n := d.next.Load()
	return n != nil && !t.Before(*n)
}

// lower makes the timer fire at t if that is earlier than it would.
func (d *deadlineTimer) lower(t time.Time, sweep func()) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.covers(t) {
		return
	}
	d.next.Store(&t)
	if d.timer == nil {
		d.timer = time.AfterFunc(time.Until(t), sweep)
		return
	}
	d.timer.Reset(time.Until(t))
}

// sweepDeadlines runs when the listener's deadline timer fires: it fails
// the reads of the connections whose deadline has passed and arms the
// timer at the earliest deadline left.
func (l *faultListener) sweepDeadlines() {
	d := l.deadlines
	d.sweeping.Lock()
	defer d.sweeping.Unlock()
	// Unarmed while the connections are read: a connection that sets a
	// deadline meanwhile arms the timer itself (lower), so that none set
	// after its connection was read here is missed.
	d.mu.Lock()
	d.next.Store(nil)
	d.mu.Unlock()
	now := time.Now()
	var earliest time.Time
	l.mu.Lock()
	for c := range l.open {
		c.dmu.Lock()
		switch t := c.deadline; {
		case t.IsZero():
		case !t.After(now):
			c.deadline, c.socketPast = time.Time{}, true
			_ = c.Conn.SetReadDeadline(t)
		case earliest.IsZero() || t.Before(earliest):
			earliest = t
		}
		c.dmu.Unlock()
	}
	l.mu.Unlock()
	if !earliest.IsZero() {
		d.lower(earliest, l.sweepDeadlines)
	}
}

// SetReadDeadline keeps t as the connection's read deadline, for the
// listener's timer to enforce (see deadlineTimer); a deadline already
// past goes to the socket.
func (c *trackedConn) SetReadDeadline(t time.Time) error {
	c.dmu.Lock()
	if !c.socketPast && (t.IsZero() || c.l.deadlines.covers(t)) {
		// The common case: none, or no earlier than the timer, which
		// then finds it.
		c.deadline = t
		c.dmu.Unlock()
		return nil
	}
	err := c.setReadDeadlineSlow(t)
	c.dmu.Unlock()
	return err
}

// SetDeadline is SetReadDeadline and the socket's SetWriteDeadline.
func (c *trackedConn) SetDeadline(t time.Time) error {
	if err := c.SetReadDeadline(t); err != nil {
		return err
	}
	return c.Conn.SetWriteDeadline(t)
}

// setReadDeadlineSlow is SetReadDeadline, under dmu, when the socket's
// deadline has passed or t is earlier than the listener's timer.
func (c *trackedConn) setReadDeadlineSlow(t time.Time) error {
	if c.kicked.Load() {
		// A blackhole stopped reading the connection: no deadline set
		// after the kick may let a read through (net/http sets one
		// between two requests).
		return nil
	}
	if c.socketPast {
		// Cleared, so that reads wait for the deadline set now.
		if err := c.Conn.SetReadDeadline(time.Time{}); err != nil {
			return err
		}
		c.socketPast = false
	}
	c.deadline = time.Time{}
	switch {
	case t.IsZero():
	case !t.After(time.Now()):
		c.socketPast = true
		return c.Conn.SetReadDeadline(t)
	default:
		c.deadline = t
		c.l.deadlines.lower(t, c.l.sweepDeadlines)
	}
	return nil
}

// kick fails the connection's pending read now (a blackhole started), as
// a deadline in the past does.
func (c *trackedConn) kick() {
	c.dmu.Lock()
	defer c.dmu.Unlock()
	c.kicked.Store(true)
	c.deadline, c.socketPast = time.Time{}, true
	_ = c.Conn.SetReadDeadline(time.Unix(1, 0))
}
