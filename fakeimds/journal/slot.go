package journal

import (
	"encoding/binary"
	"time"
	"unsafe"
)

// The ring keeps entries packed into slots that hold no pointers, so that
// the garbage collector never scans it. With 10,000 entries of a dozen
// strings, a header map and a time each, scanning the ring was most of
// the collector's work in a server answering cached tokens: about a
// twelfth of the instructions per request (docs/performance.md). An
// entry whose strings do not fit a slot, or that names faults or
// truncated fields, is kept whole beside the ring (Journal.spill).

// slotBytes is how many bytes of strings a slot holds: a token request's
// entry needs 250–350 (its query, resource, identity and User-Agent).
const slotBytes = 448

// The strings of an entry, in the order a slot keeps them; fHeaders is
// the header map, encoded (appendHeaders).
const (
	fFace = iota
	fRemote
	fMethod
	fPath
	fQuery
	fSelector
	fIdentity
	fIdentityName
	fResource
	fError
	fRetryAfter
	fHeaders
	nFields
)

// slot flags.
const (
	slotSpilled    = 1 << iota // the entry is in Journal.spill
	slotCached                 // Entry.Cached
	slotLocal                  // Entry.Time is in time.Local (else UTC)
	slotHasHeaders             // Entry.Headers is not nil (an empty map is kept)
)

// slot is one ring entry, packed.
type slot struct {
	seq     uint64
	sec     int64 // Entry.Time: Unix seconds and nanoseconds
	nsec    int32
	flags   uint8
	status  int64
	latency float64
	// end[f] is where field f ends in buf; field f starts at end[f-1].
	end [nFields]uint16
	buf [slotBytes]byte
}

// pack stores e in s, and reports false, leaving s's strings unset, when
// e does not fit: its strings are too long together, it has faults or
// truncated fields, or its time is in a location other than UTC or Local.
// hdr is e.Headers encoded by appendHeaders.
func (s *slot) pack(e *Entry, hdr []byte) bool {
	s.seq, s.status, s.latency, s.flags = e.Seq, int64(e.Status), e.LatencyMS, 0
	if e.Cached {
		s.flags |= slotCached
	}
	if e.Faults != nil || e.Truncated != nil || hdr == nil && e.Headers != nil {
		return false
	}
	switch loc := e.Time.Location(); loc {
	case time.UTC:
	case time.Local:
		s.flags |= slotLocal
	default:
		return false
	}
	if len(e.Face)+len(e.Remote)+len(e.Method)+len(e.Path)+len(e.Query)+len(e.Selector)+len(e.Identity)+
		len(e.IdentityName)+len(e.Resource)+len(e.Error)+len(e.RetryAfter)+len(hdr) > slotBytes {
		return false
	}
	if e.Headers != nil {
		s.flags |= slotHasHeaders
	}
	s.sec, s.nsec = e.Time.Unix(), int32(e.Time.Nanosecond())
	// One statement per field rather than a loop over an array of them:
	// building the array cost more than the copies.
	b := s.buf[:0]
	b = append(b, e.Face...)
	s.end[fFace] = uint16(len(b))
	b = append(b, e.Remote...)
	s.end[fRemote] = uint16(len(b))
	b = append(b, e.Method...)
	s.end[fMethod] = uint16(len(b))
	b = append(b, e.Path...)
	s.end[fPath] = uint16(len(b))
	b = append(b, e.Query...)
	s.end[fQuery] = uint16(len(b))
	b = append(b, e.Selector...)
	s.end[fSelector] = uint16(len(b))
	b = append(b, e.Identity...)
	s.end[fIdentity] = uint16(len(b))
	b = append(b, e.IdentityName...)
	s.end[fIdentityName] = uint16(len(b))
	b = append(b, e.Resource...)
	s.end[fResource] = uint16(len(b))
	b = append(b, e.Error...)
	s.end[fError] = uint16(len(b))
	b = append(b, e.RetryAfter...)
	s.end[fRetryAfter] = uint16(len(b))
	b = append(b, hdr...)
	s.end[fHeaders] = uint16(len(b))
	return true
}

// entry unpacks s, its strings sharing one allocation. hm remembers the
// header map decoded last, which entries with the same headers share: a
// client sends the same ones on every request.
func (s *slot) entry(hm *headerMemo) Entry {
	all := string(s.buf[:s.end[nFields-1]])
	field := func(f int) string {
		start := 0
		if f > 0 {
			start = int(s.end[f-1])
		}
		return all[start:s.end[f]]
	}
	t := time.Unix(s.sec, int64(s.nsec))
	if s.flags&slotLocal == 0 {
		t = t.UTC()
	}
	e := Entry{Seq: s.seq, Time: t, Face: field(fFace), Remote: field(fRemote), Method: field(fMethod),
		Path: field(fPath), Query: field(fQuery), Selector: field(fSelector), Identity: field(fIdentity),
		IdentityName: field(fIdentityName), Resource: field(fResource), Status: int(s.status),
		Error: field(fError), RetryAfter: field(fRetryAfter), Cached: s.flags&slotCached != 0, LatencyMS: s.latency}
	if s.flags&slotHasHeaders != 0 {
		e.Headers = hm.decode(field(fHeaders))
	}
	return e
}

// appendHeaders appends h encoded to b: each key and value with its
// length before it, in 2 bytes. It returns nil when h is nil, and when a
// key or value is too long to encode (more than 64 KiB, which bound has
// cut already).
func appendHeaders(b []byte, h map[string]string) []byte {
	if h == nil {
		return nil
	}
	b = b[:0]
	if b == nil {
		b = []byte{}
	}
	for k, v := range h {
		if len(k) > 0xffff || len(v) > 0xffff {
			return nil
		}
		b = binary.LittleEndian.AppendUint16(b, uint16(len(k)))
		b = append(b, k...)
		b = binary.LittleEndian.AppendUint16(b, uint16(len(v)))
		b = append(b, v...)
	}
	return b
}

// headerMemo decodes header maps, handing out the same map for the same
// encoding twice in a row.
type headerMemo struct {
	enc string
	m   map[string]string
}

func (hm *headerMemo) decode(enc string) map[string]string {
	if hm.m != nil && enc == hm.enc {
		return hm.m
	}
	m := make(map[string]string)
	next := func(s string) (string, string) {
		n := 2 + (int(s[0]) | int(s[1])<<8)
		return s[2:n], s[n:]
	}
	for s := enc; s != ""; {
		var k, v string
		k, s = next(s)
		v, s = next(s)
		m[k] = v
	}
	hm.enc, hm.m = enc, m
	return m
}

// mapID identifies a map (not its contents): two map values are the same
// map exactly when they hold the same pointer.
func mapID(m map[string]string) unsafe.Pointer { return *(*unsafe.Pointer)(unsafe.Pointer(&m)) }
