package dnsfault

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
)

// The parts of RFC 1035's message format the resolver reads and writes:
// it forwards messages whole and only ever reads the question of a query
// and writes an NXDOMAIN answer to it, so a full DNS library would be
// all weight here.
const (
	headerLen = 12
	// flagQR marks a response; rcodeNXDomain is RCODE 3, name error.
	flagQR        = 0x8000
	flagRA        = 0x0080
	flagsKeep     = 0x7900 // opcode (0x7800) and RD (0x0100)
	rcodeServFail = 2
	rcodeNXDomain = 3
	// maxNameLen is RFC 1035's limit on a name's wire length.
	maxNameLen = 255
)

// question returns the name (lower-case, without the final dot) and the
// end offset of a query's first question.
func question(msg []byte) (string, int, error) {
	if len(msg) < headerLen {
		return "", 0, fmt.Errorf("message of %d bytes: shorter than a header", len(msg))
	}
	if binary.BigEndian.Uint16(msg[2:])&flagQR != 0 {
		return "", 0, errors.New("a response, not a query")
	}
	if binary.BigEndian.Uint16(msg[4:]) != 1 {
		return "", 0, fmt.Errorf("%d questions: want 1", binary.BigEndian.Uint16(msg[4:]))
	}
	var labels []string
	off, wire := headerLen, 0
	for {
		if off >= len(msg) {
			return "", 0, errors.New("question name runs past the message")
		}
		n := int(msg[off])
		off++
		if n == 0 {
			break
		}
		// A query's question is the message's first name: there is
		// nothing before it to point to, so a pointer is malformed.
		if n&0xC0 != 0 {
			return "", 0, fmt.Errorf("label of type %#x in a question", n&0xC0)
		}
		wire += n + 1
		if wire > maxNameLen {
			return "", 0, errors.New("question name too long")
		}
		if off+n > len(msg) {
			return "", 0, errors.New("question name runs past the message")
		}
		labels = append(labels, strings.ToLower(string(msg[off:off+n])))
		off += n
	}
	// QTYPE and QCLASS follow the name.
	if off+4 > len(msg) {
		return "", 0, errors.New("question without type and class")
	}
	return strings.Join(labels, "."), off + 4, nil
}

// reply returns an answer to query with rcode (NXDOMAIN: no such name;
// SERVFAIL) and no records: the query's ID, opcode, RD and question,
// with RA set (an OPT record of the query is left out, which every
// resolver accepts).
func reply(query []byte, rcode uint16) ([]byte, error) {
	_, end, err := question(query)
	if err != nil {
		return nil, err
	}
	out := make([]byte, end)
	copy(out, query[:end])
	flags := binary.BigEndian.Uint16(query[2:])&flagsKeep | flagQR | flagRA | rcode
	binary.BigEndian.PutUint16(out[2:], flags)
	binary.BigEndian.PutUint16(out[4:], 1)
	clear(out[6:headerLen]) // no answer, authority or additional records
	return out, nil
}

// validName checks a host name a fault names: dot-separated labels of
// 1 to 63 letters, digits and dashes (RFC 1123), 253 characters at most.
func validName(name string) error {
	if name == "" || len(name) > 253 {
		return fmt.Errorf("name %q: want 1 to 253 characters", name)
	}
	for l := range strings.SplitSeq(name, ".") {
		if l == "" || len(l) > 63 {
			return fmt.Errorf("name %q: empty or over-long label", name)
		}
		for _, c := range l {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return fmt.Errorf("name %q: %q is not a lower-case letter, digit or dash", name, c)
			}
		}
	}
	return nil
}
