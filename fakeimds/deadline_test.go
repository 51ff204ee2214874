package fakeimds

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"sync"
	"testing"
	"time"
)

// unit is the step of the deadline tests: long enough for the order of
// events to hold on a loaded machine.
const unit = 100 * time.Millisecond

// lateBy is how late a deadline may be enforced before a test fails: the
// timer's goroutine waits for a core on a loaded 2-core machine.
const lateBy = 2 * time.Second

// trackedPair returns a connection accepted by l, as the server sees it,
// and the client's end.
func trackedPair(t *testing.T, l *faultListener) (*trackedConn, net.Conn) {
	t.Helper()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			t.Errorf("Accept: %v", err)
		}
		accepted <- c
	}()
	client, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	// A read that no deadline fails ends when the client goes, with EOF:
	// the test fails rather than hangs.
	guard := time.AfterFunc(30*unit+lateBy, func() { _ = client.Close() })
	t.Cleanup(func() { guard.Stop(); _ = client.Close() })
	c := <-accepted
	if c == nil {
		t.FailNow()
	}
	t.Cleanup(func() { _ = c.Close() })
	return c.(*trackedConn), client
}

// newTestFaultListener is a faultListener on loopback for the IMDS face.
func newTestFaultListener(t *testing.T) *faultListener {
	t.Helper()
	s := newServer(t, nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := newFaultListener(s, ln, []string{FaceIMDS}, false)
	t.Cleanup(func() { _ = l.Close() })
	return l
}

// readResult is what a read on the server's end returned, and when.
type readResult struct {
	n       int
	err     error
	elapsed time.Duration
}

func readAfter(c net.Conn, start time.Time) readResult {
	n, err := c.Read(make([]byte, 1))
	return readResult{n, err, time.Since(start)}
}

// expectTimeout checks that r is a deadline failure no earlier than at.
func expectTimeout(t *testing.T, what string, r readResult, at time.Duration) {
	t.Helper()
	if !errors.Is(r.err, os.ErrDeadlineExceeded) {
		t.Fatalf("%s: read returned %d, %v; want a deadline failure at %v", what, r.n, r.err, at)
	}
	if r.elapsed < at || r.elapsed > at+lateBy {
		t.Fatalf("%s: read failed after %v; want at %v (at most %v late)", what, r.elapsed, at, lateBy)
	}
}

// TestReadDeadlines checks the listener's deadline timer (deadline.go)
// against what a socket's own read deadline does: a read fails once the
// deadline passes and not before, a deadline moved or cleared before it
// passes does not fail it, one in the past fails it at once, and after
// one passed a new one counts.
func TestReadDeadlines(t *testing.T) {
	for _, tc := range []struct {
		name string
		// run sets deadlines on c (client: the other end) and checks
		// the reads; start is when the test began.
		run func(t *testing.T, c *trackedConn, client net.Conn, start time.Time)
	}{
		{"passes", func(t *testing.T, c *trackedConn, _ net.Conn, start time.Time) {
			_ = c.SetReadDeadline(start.Add(2 * unit))
			expectTimeout(t, "deadline in 2 units", readAfter(c, start), 2*unit)
		}},
		{"moved later", func(t *testing.T, c *trackedConn, _ net.Conn, start time.Time) {
			_ = c.SetReadDeadline(start.Add(2 * unit))
			_ = c.SetReadDeadline(start.Add(5 * unit))
			expectTimeout(t, "deadline moved from 2 to 5 units", readAfter(c, start), 5*unit)
		}},
		{"moved earlier", func(t *testing.T, c *trackedConn, _ net.Conn, start time.Time) {
			_ = c.SetReadDeadline(start.Add(20 * unit))
			_ = c.SetReadDeadline(start.Add(2 * unit))
			expectTimeout(t, "deadline moved from 20 to 2 units", readAfter(c, start), 2*unit)
		}},
		{"without a monotonic reading", func(t *testing.T, c *trackedConn, _ net.Conn, start time.Time) {
			_ = c.SetReadDeadline(time.Now().Round(0).Add(2 * unit))
			expectTimeout(t, "wall-clock deadline in 2 units", readAfter(c, start), 2*unit)
		}},
		{"cleared", func(t *testing.T, c *trackedConn, client net.Conn, start time.Time) {
			_ = c.SetReadDeadline(start.Add(2 * unit))
			_ = c.SetReadDeadline(time.Time{})
			time.AfterFunc(5*unit, func() { _, _ = client.Write([]byte("x")) })
			if r := readAfter(c, start); r.n != 1 || r.elapsed < 5*unit {
				t.Fatalf("deadline cleared: read returned %d, %v after %v; want the byte written at 5 units", r.n, r.err, r.elapsed)
			}
		}},
		{"in the past", func(t *testing.T, c *trackedConn, _ net.Conn, start time.Time) {
			_ = c.SetReadDeadline(time.Now().Add(-time.Second))
			expectTimeout(t, "deadline a second ago", readAfter(c, start), 0)
		}},
		{"a long time ago, as net/http aborts its background read", func(t *testing.T, c *trackedConn, _ net.Conn, start time.Time) {
			_ = c.SetReadDeadline(time.Unix(1, 0))
			expectTimeout(t, "deadline in 1970", readAfter(c, start), 0)
		}},
		{"a new deadline after one passed", func(t *testing.T, c *trackedConn, client net.Conn, start time.Time) {
			_ = c.SetReadDeadline(start.Add(unit))
			expectTimeout(t, "first deadline", readAfter(c, start), unit)
			next := time.Now()
			_ = c.SetReadDeadline(next.Add(2 * unit))
			expectTimeout(t, "second deadline", readAfter(c, next), 2*unit)
			_ = c.SetReadDeadline(time.Time{})
			time.AfterFunc(2*unit, func() { _, _ = client.Write([]byte("x")) })
			if r := readAfter(c, time.Now()); r.n != 1 {
				t.Fatalf("deadline cleared after two passed: read returned %d, %v; want the byte", r.n, r.err)
			}
		}},
		{"a deadline in the past, then none", func(t *testing.T, c *trackedConn, client net.Conn, start time.Time) {
			_ = c.SetReadDeadline(time.Unix(1, 0))
			_ = c.SetReadDeadline(time.Time{})
			time.AfterFunc(2*unit, func() { _, _ = client.Write([]byte("x")) })
			if r := readAfter(c, start); r.n != 1 {
				t.Fatalf("deadline in 1970 then cleared: read returned %d, %v; want the byte", r.n, r.err)
			}
		}},
		{"SetDeadline", func(t *testing.T, c *trackedConn, _ net.Conn, start time.Time) {
			_ = c.SetDeadline(start.Add(2 * unit))
			expectTimeout(t, "SetDeadline in 2 units", readAfter(c, start), 2*unit)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, client := trackedPair(t, newTestFaultListener(t))
			tc.run(t, c, client, time.Now())
		})
	}
}

// TestReadDeadlinesManyConnections gives each of a listener's connections
// its own deadline, set in shuffled order and moved once, and checks that
// each read fails at its own, from one timer.
func TestReadDeadlinesManyConnections(t *testing.T) {
	l := newTestFaultListener(t)
	const n = 12
	conns := make([]*trackedConn, n)
	for i := range conns {
		conns[i], _ = trackedPair(t, l)
	}
	start := time.Now()
	at := func(i int) time.Duration { return time.Duration(2+i%4) * unit }
	for _, i := range []int{5, 0, 11, 3, 8, 1, 10, 6, 2, 9, 4, 7} {
		_ = conns[i].SetReadDeadline(start.Add(30 * unit)) // moved earlier below
		_ = conns[i].SetReadDeadline(start.Add(at(i)))
	}
	var wg sync.WaitGroup
	results := make([]readResult, n)
	for i, c := range conns {
		wg.Go(func() { results[i] = readAfter(c, start) })
	}
	wg.Wait()
	for i, r := range results {
		expectTimeout(t, "connection "+string(rune('a'+i)), r, at(i))
	}
}

// TestServerTimeouts checks the header and idle timeouts of a listener
// with faces end to end (they are enforced by its deadline timer): a
// request whose headers do not come in time and a keep-alive connection
// left idle are closed, a connection in use is not.
func TestServerTimeouts(t *testing.T) {
	s := newServer(t, nil)
	s.headerTimeout, s.idleTimeout = 3*unit, 6*unit
	a := running(t, s)
	const request = "GET " + IMDSTokenPath + "?api-version=2018-02-01&resource=https%3A%2F%2Fvault.azure.net HTTP/1.1\r\nHost: x\r\nMetadata: true\r\n\r\n"
	dial := func(t *testing.T) net.Conn {
		c, err := net.Dial("tcp", a.IMDS)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		_ = c.SetReadDeadline(time.Now().Add(30 * unit))
		return c
	}
	// closedAfter reads from c until it is closed, and returns when.
	closedAfter := func(t *testing.T, c io.Reader, start time.Time) time.Duration {
		if _, err := io.Copy(io.Discard, c); err != nil {
			t.Fatalf("the server did not close the connection: %v", err)
		}
		return time.Since(start)
	}
	t.Run("header", func(t *testing.T) {
		start := time.Now()
		c := dial(t)
		_, _ = c.Write([]byte("GET " + IMDSTokenPath + " HTTP/1.1\r\nHost: x\r\n"))
		// The server may accept before the dial returns here: timed
		// from before it.
		if d := closedAfter(t, c, start); d < s.headerTimeout || d > s.headerTimeout+lateBy {
			t.Fatalf("a request without the end of its headers was closed after %v; want the header timeout, %v", d, s.headerTimeout)
		}
	})
	t.Run("idle", func(t *testing.T) {
		c := dial(t)
		br := bufio.NewReader(c)
		_, _ = c.Write([]byte(request))
		resp, err := http.ReadResponse(br, nil)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("token request: %v %v", resp, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		start := time.Now()
		// The server set its idle deadline a little before the answer
		// arrived here.
		if d := closedAfter(t, br, start); d < s.idleTimeout-unit || d > s.idleTimeout+lateBy {
			t.Fatalf("an idle keep-alive connection was closed after %v; want the idle timeout, %v", d, s.idleTimeout)
		}
	})
	t.Run("in use", func(t *testing.T) {
		c := dial(t)
		br := bufio.NewReader(c)
		// Longer in all than both timeouts, each pause shorter.
		for i := range 6 {
			_, _ = c.Write([]byte(request))
			resp, err := http.ReadResponse(br, nil)
			if err != nil || resp.StatusCode != http.StatusOK {
				t.Fatalf("request %d on a connection in use: %v %v", i, resp, err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			time.Sleep(2 * unit)
		}
	})
}
