package framework

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestRereadLogs(t *testing.T) {
	result := []byte(`{"client":"raw","ok":true}` + "\n")
	errKubelet := errors.New("kubelet: container not found")
	type read struct {
		log []byte
		err error
	}
	tests := []struct {
		name string
		// reads are the answers in turn; the last repeats.
		reads     []read
		wantLog   string
		wantErr   error
		wantReads int // 0: more than one, up to the bound
	}{
		{name: "complete at once: read once", reads: []read{{log: result}}, wantLog: string(result), wantReads: 1},
		{name: "empty, then the result", reads: []read{{}, {}, {log: result}}, wantLog: string(result), wantReads: 3},
		{name: "an error, then the result", reads: []read{{err: errKubelet}, {log: result}}, wantLog: string(result), wantReads: 2},
		{name: "never a result: the last log, read until the bound", reads: []read{{log: []byte("starting\n")}}, wantLog: "starting\n"},
		{name: "an error after a log keeps the log", reads: []read{{log: []byte("starting\n")}, {err: errKubelet}}, wantLog: "starting\n"},
		{name: "only errors: the error", reads: []read{{err: errKubelet}}, wantErr: errKubelet},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := 0
			readFn := func(context.Context) ([]byte, error) {
				r := tt.reads[min(n, len(tt.reads)-1)]
				n++
				return r.log, r.err
			}
			complete := func(b []byte) bool { return len(parseResults(b)) > 0 }
			log, err := rereadLogs(context.Background(), readFn, complete, time.Millisecond, 50*time.Millisecond)
			if string(log) != tt.wantLog || !errors.Is(err, tt.wantErr) {
				t.Errorf("got %q, %v; want %q, %v", log, err, tt.wantLog, tt.wantErr)
			}
			if tt.wantReads > 0 && n != tt.wantReads {
				t.Errorf("%d reads, want %d", n, tt.wantReads)
			}
			if tt.wantReads == 0 && n < 3 {
				t.Errorf("%d reads: an incomplete log must be read again until the bound", n)
			}
		})
	}
}
