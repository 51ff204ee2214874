package goraw

import (
	"encoding/json"
	"testing"
	"time"
)

func TestWireDecoding(t *testing.T) {
	for _, tc := range []struct {
		raw, typ string
		exp      time.Time
		err      bool
	}{
		{`"1700000000"`, "string", time.Unix(1700000000, 0), false},
		{`1700000000`, "number", time.Unix(1700000000, 0), false},
		{`"2023-11-14T22:13:20Z"`, "string", time.Unix(1700000000, 0), false},
		{`"11/14/2023 10:13:20 PM +00:00"`, "string", time.Unix(1700000000, 0), false},
		{`"soon"`, "string", time.Time{}, true},
		{`null`, "null", time.Time{}, true},
		{`{}`, "object", time.Time{}, true},
	} {
		if got := jsonType(json.RawMessage(tc.raw)); got != tc.typ {
			t.Errorf("jsonType(%s) = %s, want %s", tc.raw, got, tc.typ)
		}
		exp, err := expiresOn(json.RawMessage(tc.raw))
		if (err != nil) != tc.err || !exp.Equal(tc.exp) {
			t.Errorf("expiresOn(%s) = %v, %v", tc.raw, exp, err)
		}
	}
}
