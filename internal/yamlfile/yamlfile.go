// Package yamlfile decodes YAML files strictly into JSON-tagged Go types and
// points errors at the line they concern, so that users of every idharness
// configuration and scenario file get "file:line: field: problem".
package yamlfile

import (
	"bytes"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	yamlv3 "go.yaml.in/yaml/v3"
	"sigs.k8s.io/yaml"
)

// Error is a decoding or validation error located in a file.
type Error struct {
	File  string
	Line  int // 0 when unknown
	Field string
	Err   error
}

func (e *Error) Error() string {
	loc := e.File
	if e.Line > 0 {
		loc += ":" + strconv.Itoa(e.Line)
	}
	if e.Field != "" {
		return fmt.Sprintf("%s: %s: %v", loc, e.Field, e.Err)
	}
	return fmt.Sprintf("%s: %v", loc, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

var (
	unknownField = regexp.MustCompile(`unknown field "([^"]+)"`)
	// encoding/json names the Go struct path; the last JSON name is enough
	// to find the line.
	typeField = regexp.MustCompile(`Go struct field [A-Za-z0-9_]+\.([A-Za-z0-9_.\[\]]+) of type ([^ ]+)`)
)

// Decode decodes data (named file in errors) into v, rejecting unknown
// fields and duplicate keys.
func Decode(file string, data []byte, v any) error {
	if len(bytes.TrimSpace(data)) == 0 {
		return &Error{File: file, Err: errors.New("file is empty")}
	}
	var root yamlv3.Node
	if err := yamlv3.Unmarshal(data, &root); err != nil {
		return &Error{File: file, Err: cleanYAMLError(err)}
	}
	err := yaml.UnmarshalStrict(data, v)
	if err == nil {
		return nil
	}
	msg := err.Error()
	if m := unknownField.FindStringSubmatch(msg); m != nil {
		return &Error{File: file, Line: findKey(&root, m[1]), Field: m[1],
			Err: errors.New("unknown field; check its spelling against the documented fields")}
	}
	if m := typeField.FindStringSubmatch(msg); m != nil {
		parts := strings.Split(m[1], ".")
		last := parts[len(parts)-1]
		return &Error{File: file, Line: findKey(&root, last), Field: m[1], Err: fmt.Errorf("wrong type, want %s", m[2])}
	}
	// Errors from a field's own UnmarshalJSON lack the field name.
	msg = strings.TrimPrefix(msg, "error unmarshaling JSON: while decoding JSON: ")
	return &Error{File: file, Err: errors.New(msg)}
}

// Line returns the line of the node at path (dotted, with [i] for list
// items, e.g. "userAssigned[1].clientId") in data, or 0 if it is not there.
func Line(data []byte, path string) int {
	var root yamlv3.Node
	if yamlv3.Unmarshal(data, &root) != nil || len(root.Content) == 0 {
		return 0
	}
	n := root.Content[0]
	line := n.Line
	for _, seg := range splitPath(path) {
		switch {
		case seg.index >= 0:
			if n.Kind != yamlv3.SequenceNode || seg.index >= len(n.Content) {
				return line
			}
			n = n.Content[seg.index]
		default:
			if n.Kind != yamlv3.MappingNode {
				return line
			}
			var next *yamlv3.Node
			for i := 0; i+1 < len(n.Content); i += 2 {
				if n.Content[i].Value == seg.key {
					next = n.Content[i+1]
					line = n.Content[i].Line
					break
				}
			}
			if next == nil {
				return line
			}
			n = next
			continue
		}
		line = n.Line
	}
	return line
}

type segment struct {
	key   string
	index int
}

func splitPath(path string) []segment {
	var out []segment
	for _, part := range strings.Split(path, ".") {
		if part == "" {
			continue
		}
		key := part
		var idx []int
		for {
			o := strings.IndexByte(key, '[')
			if o < 0 || !strings.HasSuffix(key, "]") {
				break
			}
			c := strings.IndexByte(key[o:], ']') + o
			i, err := strconv.Atoi(key[o+1 : c])
			if err != nil {
				break
			}
			idx = append(idx, i)
			rest := key[c+1:]
			key = key[:o] + rest
		}
		if key != "" {
			out = append(out, segment{key: key, index: -1})
		}
		for _, i := range idx {
			out = append(out, segment{index: i})
		}
	}
	return out
}

// findKey returns the line of the first mapping key named key, depth first.
func findKey(n *yamlv3.Node, key string) int {
	if n.Kind == yamlv3.MappingNode {
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == key {
				return n.Content[i].Line
			}
		}
	}
	for _, c := range n.Content {
		if l := findKey(c, key); l > 0 {
			return l
		}
	}
	return 0
}

func cleanYAMLError(err error) error {
	return errors.New(strings.TrimPrefix(err.Error(), "yaml: "))
}
