package incluster

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/onsi/ginkgo/v2/types"
)

// The runner's report travels in its log between these lines, so that
// the starting side needs no volume and no exec: only the pod's log,
// which the API server serves to whoever may read it.
const (
	frameBegin = "--- idharness report (json, gzip, base64) begin ---"
	frameEnd   = "--- idharness report end ---"
	// frameWidth keeps the encoded lines short: a container runtime
	// splits long log lines.
	frameWidth = 76
)

// WriteFrame writes r to w as framed lines.
func WriteFrame(w io.Writer, r types.Report) error {
	b, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("encode the report: %w", err)
	}
	var z bytes.Buffer
	zw := gzip.NewWriter(&z)
	if _, err := zw.Write(b); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return err
	}
	enc := base64.StdEncoding.EncodeToString(z.Bytes())
	var out strings.Builder
	out.WriteString("\n" + frameBegin + "\n")
	for len(enc) > 0 {
		n := min(frameWidth, len(enc))
		out.WriteString(enc[:n] + "\n")
		enc = enc[n:]
	}
	out.WriteString(frameEnd + "\n")
	// One write, so that no progress line lands inside the frame.
	_, err = io.WriteString(w, out.String())
	return err
}

// errNoFrame says that a log ended without a whole report.
var errNoFrame = errors.New("no report in the runner's log")

// frameReader reads a runner's log line by line: lines outside the frame
// go to pass (the run's progress), the frame is decoded.
type frameReader struct {
	pass    func(line string)
	inFrame bool
	enc     strings.Builder
	report  *types.Report
	err     error
}

// line takes one line of the log.
func (f *frameReader) line(l string) {
	switch {
	case l == frameBegin:
		f.inFrame, f.report, f.err = true, nil, nil
		f.enc.Reset()
	case l == frameEnd && f.inFrame:
		f.inFrame = false
		r, err := decodeFrame(f.enc.String())
		f.report, f.err = r, err
	case f.inFrame && isBase64(strings.TrimSpace(l)):
		f.enc.WriteString(strings.TrimSpace(l))
	case f.inFrame:
		// The runner's standard error shares the log with its standard
		// output, and the runtime may cut the frame's one write in
		// pieces: a line of the other stream (its exit error) can land
		// inside the frame, where decoding it lost the whole report.
		if f.pass != nil {
			f.pass(l)
		}
	default:
		if f.pass != nil {
			f.pass(l)
		}
	}
}

// isBase64 reports whether l is made of the standard base64 alphabet
// only, as every line of a frame is.
func isBase64(l string) bool {
	if l == "" {
		return false
	}
	for _, c := range l {
		if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '+' || c == '/' || c == '=') {
			return false
		}
	}
	return true
}

// result is the decoded report, or why there is none.
func (f *frameReader) result() (types.Report, error) {
	if f.err != nil {
		return types.Report{}, f.err
	}
	if f.report == nil {
		return types.Report{}, errNoFrame
	}
	return *f.report, nil
}

func decodeFrame(s string) (*types.Report, error) {
	z, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("the runner's report: %w", err)
	}
	zr, err := gzip.NewReader(bytes.NewReader(z))
	if err != nil {
		return nil, fmt.Errorf("the runner's report: %w", err)
	}
	b, err := io.ReadAll(zr)
	if err != nil {
		return nil, fmt.Errorf("the runner's report: %w", err)
	}
	var r types.Report
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("the runner's report: %w", err)
	}
	return &r, nil
}

// ReadFrame reads a whole runner log from r, passing the lines outside
// the frame to pass, and returns the report it carries.
func ReadFrame(r io.Reader, pass func(line string)) (types.Report, error) {
	f := &frameReader{pass: pass}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 4*1024*1024)
	for sc.Scan() {
		f.line(sc.Text())
	}
	if err := sc.Err(); err != nil {
		return types.Report{}, fmt.Errorf("read the runner's log: %w", err)
	}
	return f.result()
}
