package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// The load generator: each worker holds one keep-alive connection and
// sends preformatted request bytes, one request in flight at a time (as
// wrk does), parsing just enough of the answer (status line and
// Content-Length) to find its end. Nothing is allocated per request but
// the latency sample, so that the generator stays well ahead of the
// servers it measures (see -selfcheck).

// result is one load run's figures.
type result struct {
	requests int64
	errors   int64 // non-200 answers
	elapsed  time.Duration
	lat      []time.Duration // sorted
	// cpuPerReq is the server process's CPU time (user+system) per
	// request, when known.
	cpuPerReq time.Duration
}

func (r result) rps() float64 { return float64(r.requests) / r.elapsed.Seconds() }

// quantile returns the q-quantile of the latencies (0 when none).
func (r result) quantile(q float64) time.Duration {
	if len(r.lat) == 0 {
		return 0
	}
	i := int(q * float64(len(r.lat)))
	return r.lat[min(i, len(r.lat)-1)]
}

// load drives addr with conns connections until d passes or, when total
// > 0, until total requests are answered. reqFor returns the k-th request
// (worker w sends k = w, w+conns, …), so that a run can spread over many
// resources. progress, if set, is called
// by one worker with the count answered so far, about every 1,000
// requests.
func load(addr string, conns int, d time.Duration, total int64, reqFor func(k int) []byte, progress func(done int64)) (result, error) {
	var (
		done, bad atomic.Int64
		wg        sync.WaitGroup
		mu        sync.Mutex
		firstErr  error
		lats      = make([][]time.Duration, conns)
	)
	deadline := time.Now().Add(d)
	start := time.Now()
	for w := 0; w < conns; w++ {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			return result{}, err
		}
		wg.Add(1)
		go func(w int, c net.Conn) {
			defer wg.Done()
			defer c.Close()
			br := bufio.NewReaderSize(c, 64<<10)
			lat := make([]time.Duration, 0, 1<<16)
			for k := w; ; k += conns {
				t0 := time.Now()
				if total > 0 && done.Load() >= total || total <= 0 && t0.After(deadline) {
					break
				}
				if _, err := c.Write(reqFor(k)); err != nil {
					mu.Lock()
					firstErr = cmp(firstErr, err)
					mu.Unlock()
					break
				}
				status, err := readResponse(br)
				if err != nil {
					mu.Lock()
					firstErr = cmp(firstErr, err)
					mu.Unlock()
					break
				}
				lat = append(lat, time.Since(t0))
				if status != 200 {
					bad.Add(1)
				}
				n := done.Add(1)
				if progress != nil && w == 0 && len(lat)%128 == 0 {
					progress(n)
				}
			}
			lats[w] = lat
		}(w, c)
	}
	wg.Wait()
	r := result{requests: done.Load(), errors: bad.Load(), elapsed: time.Since(start)}
	r.lat = slices.Concat(lats...)
	slices.Sort(r.lat)
	return r, firstErr
}

func cmp(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

var (
	crlf          = []byte("\r\n")
	contentLength = []byte("content-length:")
)

// readResponse reads one HTTP/1.1 response with a Content-Length body
// from br, returning its status. It allocates nothing.
func readResponse(br *bufio.Reader) (int, error) {
	line, err := br.ReadSlice('\n')
	if err != nil {
		return 0, err
	}
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) {
		return 0, fmt.Errorf("bad status line %q", line)
	}
	status := int(line[9]-'0')*100 + int(line[10]-'0')*10 + int(line[11]-'0')
	length := -1
	for {
		line, err = br.ReadSlice('\n')
		if err != nil {
			return 0, err
		}
		if bytes.Equal(line, crlf) {
			break
		}
		if len(line) > len(contentLength) && asciiEqualFold(line[:len(contentLength)], contentLength) {
			v := bytes.TrimSpace(line[len(contentLength):])
			n := 0
			for _, c := range v {
				if c < '0' || c > '9' {
					return 0, fmt.Errorf("bad Content-Length %q", v)
				}
				n = n*10 + int(c-'0')
			}
			length = n
		}
	}
	if length < 0 {
		return 0, errors.New("response without Content-Length")
	}
	if _, err := br.Discard(length); err != nil {
		return 0, err
	}
	return status, nil
}

func asciiEqualFold(a, b []byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// request formats a token request for resource.
func request(host, path, resource string) []byte {
	return []byte("GET " + path + "?api-version=2018-02-01&resource=" + queryEscape(resource) + " HTTP/1.1\r\n" +
		"Host: " + host + "\r\nMetadata: true\r\nUser-Agent: benchhttp\r\n\r\n")
}

// queryEscape escapes what a resource URI needs escaped in a query.
func queryEscape(s string) string {
	var b []byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~' {
			b = append(b, c)
			continue
		}
		b = append(b, '%', "0123456789ABCDEF"[c>>4], "0123456789ABCDEF"[c&15])
	}
	return string(b)
}

// fetch sends one request over a new connection and returns the raw
// answer: its header block (status line included, without the blank
// line) and body.
func fetch(addr string, req []byte) (header []byte, body []byte, err error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, nil, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write(req); err != nil {
		return nil, nil, err
	}
	br := bufio.NewReader(c)
	var hdr bytes.Buffer
	length := -1
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return nil, nil, err
		}
		if line == "\r\n" {
			break
		}
		hdr.WriteString(line)
		if len(line) > len(contentLength) && asciiEqualFold([]byte(line[:len(contentLength)]), contentLength) {
			if length, err = strconv.Atoi(string(bytes.TrimSpace([]byte(line[len(contentLength):])))); err != nil {
				return nil, nil, err
			}
		}
	}
	if length < 0 {
		return nil, nil, errors.New("answer without Content-Length")
	}
	body = make([]byte, length)
	if _, err := io.ReadFull(br, body); err != nil {
		return nil, nil, err
	}
	return hdr.Bytes(), body, nil
}
