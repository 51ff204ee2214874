package journal

import (
	"testing"
	"time"
)

func TestRingKeepsNewest(t *testing.T) {
	j := New(3)
	for i := 0; i < 5; i++ {
		j.Add(Entry{Status: 200 + i})
	}
	got := j.Since(0)
	if len(got) != 3 || got[0].Seq != 3 || got[2].Seq != 5 || got[2].Status != 204 {
		t.Fatalf("Since(0) = %+v", got)
	}
	if got := j.Since(4); len(got) != 1 || got[0].Seq != 5 {
		t.Fatalf("Since(4) = %+v", got)
	}
	j.Reset()
	if got := j.Since(0); len(got) != 0 {
		t.Fatalf("after Reset: %+v", got)
	}
	j.Add(Entry{})
	if got := j.Since(0); len(got) != 1 || got[0].Seq != 6 {
		t.Fatalf("sequence did not go on after Reset: %+v", got)
	}
}

func TestSubscribe(t *testing.T) {
	j := New(10)
	c, cancel := j.Subscribe(1)
	j.Add(Entry{Status: 1})
	j.Add(Entry{Status: 2}) // buffer full: dropped for this subscriber
	select {
	case e := <-c:
		if e.Status != 1 {
			t.Fatalf("got %+v", e)
		}
	case <-time.After(time.Second):
		t.Fatal("no entry")
	}
	if j.Dropped() != 1 {
		t.Errorf("Dropped = %d, want 1", j.Dropped())
	}
	cancel()
	cancel() // idempotent
	if _, open := <-c; open {
		t.Error("channel open after cancel")
	}
	j.Add(Entry{}) // must not block or panic with no subscribers
}

func TestRemoteHost(t *testing.T) {
	for _, tc := range []struct{ remote, want string }{
		{"10.244.1.2:40000", "10.244.1.2"},
		{"[fd00::2]:40000", "fd00::2"},
		{"10.244.1.2", "10.244.1.2"}, // no port: as it is
		{"", ""},
	} {
		e := Entry{Remote: tc.remote}
		if got := e.RemoteHost(); got != tc.want {
			t.Errorf("RemoteHost(%q) = %q, want %q", tc.remote, got, tc.want)
		}
	}
}
