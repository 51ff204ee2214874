// Package yamlfile decodes YAML files strictly into JSON-tagged Go types and
// points errors at the line they concern, so that users of every idharness
// configuration and scenario file get "file:line: field: problem".
//
// It is public because fakeimds is: fakeimds/config decodes its files
// with it (its errors converting to config.FileError), and a public
// package may not import internal/. The harness's other files (scenarios,
// sut.yaml, client.yaml, the protected resource's configuration) use the
// same decoder, so that every file of idharness reports errors alike.
package yamlfile

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	yamlv3 "go.yaml.in/yaml/v3"
	"sigs.k8s.io/yaml"
)

// Error is a decoding or validation error located in a file. Its fields
// are fakeimds/config.FileError's, in the same order, so that one
// converts into the other and the message is written once.
type Error struct {
	// File is the file's name as given to Decode.
	File string
	// Line is the 1-based line of the problem; 0 when unknown.
	Line int
	// Field is the field's path ("tokens.lifetime"); "" for a syntax
	// error or a problem with the whole file.
	Field string
	// Err is the problem.
	Err error
}

// Error reads "file:line: field: problem", leaving out what is unknown.
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

// Unwrap returns the problem.
func (e *Error) Unwrap() error { return e.Err }

var (
	unknownField = regexp.MustCompile(`unknown field "([^"]+)"`)
	// encoding/json names the Go struct path (its struct name is empty
	// for an anonymous struct); the JSON names find the line.
	typeField = regexp.MustCompile(`Go struct field [A-Za-z0-9_]*\.([A-Za-z0-9_.\[\]]+) of type ([^ ]+)`)
	// typeGot is what encoding/json found instead: "number 1.5", "string",
	// "array", "object", "bool".
	typeGot = regexp.MustCompile(`cannot unmarshal (number|string|array|object|bool)(?: ([^ ]+))? into`)
	// nonFinite is the YAML-to-JSON conversion's complaint about .nan
	// and .inf, which JSON cannot carry.
	nonFinite = regexp.MustCompile(`unsupported value: ([-+]?(?:NaN|Inf))`)
	// yamlLinePattern finds the line the YAML parser names in a syntax or
	// duplicate-key error.
	yamlLinePattern = regexp.MustCompile(`line (\d+): (.*)`)
	// unknownAnchor is the parser's complaint about an alias without an
	// anchor, which it reports without a line.
	unknownAnchor = regexp.MustCompile(`unknown anchor '([^']*)' referenced`)
	// quoted finds the value a field decoder complains about: encoding/json
	// and the duration and rule decoders quote it ("10x", "laterncy").
	quoted = regexp.MustCompile(`"([^"]*)"`)
	// gotValue finds an unquoted value after "got ", as in
	// `want a duration string such as "90s" or "24h", got 10`.
	gotValue = regexp.MustCompile(`got ([^\s,;]+)\s*$`)
	// missingKey finds "action.type is required": a mapping lacking a key.
	missingKey = regexp.MustCompile(`([A-Za-z0-9_]+)\.([A-Za-z0-9_]+) is required`)
)

// Decode decodes data (named file in errors) into v, rejecting unknown
// fields, duplicate keys, values JSON cannot carry (.nan, .inf) and a
// second YAML document. Errors are *Error values with the line at fault
// whenever it can be found.
func Decode(file string, data []byte, v any) error {
	if len(bytes.TrimSpace(data)) == 0 {
		return &Error{File: file, Err: errors.New("file is empty")}
	}
	root, err := parse(file, data)
	if err != nil {
		return err
	}
	err = yaml.UnmarshalStrict(data, v)
	if err == nil {
		return nil
	}
	return locate(file, root, reflect.TypeOf(v), err)
}

// parse parses data's first document and checks that no other follows.
func parse(file string, data []byte) (*yamlv3.Node, error) {
	dec := yamlv3.NewDecoder(bytes.NewReader(data))
	var root yamlv3.Node
	if err := dec.Decode(&root); err != nil {
		return nil, syntaxError(file, data, err)
	}
	for {
		var next yamlv3.Node
		err := dec.Decode(&next)
		if errors.Is(err, io.EOF) {
			return &root, nil
		}
		if err != nil {
			return nil, syntaxError(file, data, err)
		}
		if !emptyDocument(&next) {
			return nil, &Error{File: file, Line: next.Line, Err: errors.New("a second YAML document starts here, and a file holds one; remove the --- line and what follows it, or move that to a file of its own")}
		}
	}
}

// emptyDocument reports whether a document holds nothing, as a trailing
// "---" makes.
func emptyDocument(doc *yamlv3.Node) bool {
	if len(doc.Content) == 0 {
		return true
	}
	n := doc.Content[0]
	return len(doc.Content) == 1 && n.Kind == yamlv3.ScalarNode && n.Tag == "!!null" && n.Value == ""
}

// syntaxError locates an error of the YAML parser.
func syntaxError(file string, data []byte, err error) error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	msg = strings.TrimSpace(strings.TrimPrefix(msg, "unmarshal errors:"))
	if m := yamlLinePattern.FindStringSubmatch(msg); m != nil {
		if n, err := strconv.Atoi(m[1]); err == nil && n > 0 {
			return &Error{File: file, Line: n, Err: errors.New(strings.TrimSpace(m[2]))}
		}
	}
	// The parser names no line for problems on the first one, nor for
	// those of the reader (bytes) and of aliases, which are found here.
	line := 1
	switch {
	case strings.Contains(msg, "control characters are not allowed"):
		line = lineOf(data, func(r rune) bool { return r < 0x20 && r != '\t' && r != '\n' && r != '\r' || r == 0x7f })
		msg += "; remove them, or write them as escapes in a double-quoted string, e.g. \"\\u0001\""
	case strings.Contains(msg, "UTF-8"):
		line = lineOf(data, func(r rune) bool { return r == utf8.RuneError })
		msg += "; save the file as UTF-8"
	case unknownAnchor.MatchString(msg):
		name := unknownAnchor.FindStringSubmatch(msg)[1]
		line = 0
		for i, l := range strings.Split(string(data), "\n") {
			if strings.Contains(l, "*"+name) {
				line = i + 1
				break
			}
		}
		msg += fmt.Sprintf("; define it with &%s before this alias, or quote the value if * is meant literally", name)
	case strings.Contains(msg, "aliasing") || strings.Contains(msg, "contains itself"):
		line = 0
	}
	return &Error{File: file, Line: line, Err: errors.New(msg)}
}

// lineOf returns the line of the first rune of data for which bad is
// true, or 0.
func lineOf(data []byte, bad func(rune) bool) int {
	line := 1
	for _, r := range string(data) {
		if bad(r) {
			return line
		}
		if r == '\n' {
			line++
		}
	}
	return 0
}

// locate turns an error of decoding into t into an *Error with the line
// and field at fault.
func locate(file string, root *yamlv3.Node, t reflect.Type, err error) error {
	msg := err.Error()
	doc := root
	if doc.Kind == yamlv3.DocumentNode && len(doc.Content) > 0 {
		doc = doc.Content[0]
	}
	// The YAML-to-JSON conversion's own parser finds duplicate keys.
	if rest, ok := strings.CutPrefix(msg, "error converting YAML to JSON: yaml: "); ok {
		if m := yamlLinePattern.FindStringSubmatch(rest); m != nil {
			if n, err := strconv.Atoi(m[1]); err == nil && n > 0 {
				return &Error{File: file, Line: n, Err: errors.New(strings.TrimSpace(m[2]))}
			}
		}
	}
	if m := nonFinite.FindStringSubmatch(msg); m != nil {
		isNonFinite := func(n *yamlv3.Node) bool {
			return n.Kind == yamlv3.ScalarNode && n.Tag == "!!float" && nonFiniteValue(n.Value)
		}
		if n, path := findNode(doc, "", isNonFinite); n != nil {
			return &Error{File: file, Line: n.Line, Field: path, Err: fmt.Errorf("want a finite number, got %s", n.Value)}
		}
		return &Error{File: file, Err: fmt.Errorf("want finite numbers, got %s (.nan or .inf) somewhere", m[1])}
	}
	if m := unknownField.FindStringSubmatch(msg); m != nil {
		line := findUnknown(doc, t, m[1])
		if line == 0 {
			line = findKey(doc, m[1])
		}
		return &Error{File: file, Line: line, Field: m[1],
			Err: errors.New("unknown field; check its spelling against the documented fields")}
	}
	if m := typeField.FindStringSubmatch(msg); m != nil {
		return typeError(file, doc, msg, m[1], m[2])
	}
	// Errors from a field's own UnmarshalJSON lack the field name: find
	// the value they quote.
	msg = strings.TrimPrefix(msg, "error unmarshaling JSON: while decoding JSON: ")
	line, field := locateValue(doc, msg)
	return &Error{File: file, Line: line, Field: field, Err: errors.New(msg)}
}

func nonFiniteValue(v string) bool {
	switch strings.ToLower(strings.TrimLeft(v, "+-")) {
	case ".nan", ".inf":
		return true
	}
	return false
}

// typeError locates a value of the wrong type at the JSON path (without
// list indices) goPath, of Go type goType.
func typeError(file string, doc *yamlv3.Node, msg, goPath, goType string) error {
	kind, value := "", ""
	if g := typeGot.FindStringSubmatch(msg); g != nil {
		kind, value = g[1], g[2]
	}
	problem := fmt.Sprintf("wrong type, want %s", goType)
	switch {
	case kind == "number" && isInteger(goType):
		problem = fmt.Sprintf("want a whole number within %s's range, got %s", goType, value)
	case kind == "number":
		problem += ", got number " + value
	case kind == "array":
		problem += ", got a list"
	case kind == "object":
		problem += ", got a mapping"
	case kind != "":
		problem += ", got " + kind
	}
	var candidates []located
	walkPath(doc, strings.Split(goPath, "."), "", &candidates)
	for _, c := range candidates {
		if matchesKind(c.node, kind, value) {
			return &Error{File: file, Line: c.line, Field: c.path, Err: errors.New(problem)}
		}
	}
	if len(candidates) > 0 {
		return &Error{File: file, Line: candidates[0].line, Field: candidates[0].path, Err: errors.New(problem)}
	}
	parts := strings.Split(goPath, ".")
	return &Error{File: file, Line: findKey(doc, parts[len(parts)-1]), Field: goPath, Err: errors.New(problem)}
}

func isInteger(goType string) bool {
	switch goType {
	case "int", "int8", "int16", "int32", "int64", "uint", "uint8", "uint16", "uint32", "uint64":
		return true
	}
	return false
}

// located is a value node with the line of its key and its path.
type located struct {
	node *yamlv3.Node
	line int
	path string
}

// walkPath collects the values at the keys parts, through every item of
// the lists on the way, with their indexed paths.
func walkPath(n *yamlv3.Node, parts []string, path string, out *[]located) {
	if len(parts) == 0 {
		return
	}
	switch n.Kind {
	case yamlv3.SequenceNode:
		for i, c := range n.Content {
			walkPath(c, parts, fmt.Sprintf("%s[%d]", path, i), out)
		}
	case yamlv3.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if k.Value != parts[0] {
				continue
			}
			p := join(path, k.Value)
			if len(parts) == 1 {
				*out = append(*out, located{node: v, line: k.Line, path: p})
				continue
			}
			walkPath(v, parts[1:], p, out)
		}
	}
}

// matchesKind reports whether n is the kind of value encoding/json
// complained about.
func matchesKind(n *yamlv3.Node, kind, value string) bool {
	switch kind {
	case "array":
		return n.Kind == yamlv3.SequenceNode
	case "object":
		return n.Kind == yamlv3.MappingNode
	case "number":
		return n.Kind == yamlv3.ScalarNode && (n.Tag == "!!int" || n.Tag == "!!float") && (value == "" || sameNumber(n.Value, value))
	case "string":
		return n.Kind == yamlv3.ScalarNode && n.Tag == "!!str"
	case "bool":
		return n.Kind == yamlv3.ScalarNode && n.Tag == "!!bool"
	}
	return false
}

// sameNumber compares YAML's spelling of a number with encoding/json's,
// which the conversion to JSON may have rounded (1e20 for
// 99999999999999999999).
func sameNumber(yamlValue, jsonValue string) bool {
	if yamlValue == jsonValue {
		return true
	}
	a, errA := strconv.ParseFloat(strings.ReplaceAll(yamlValue, "_", ""), 64)
	b, errB := strconv.ParseFloat(jsonValue, 64)
	return errA == nil && errB == nil && a == b
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// findUnknown returns the line of the first mapping key named key that
// the JSON fields of t do not have, walking the document along t; 0 when
// t cannot say (a type decoding itself).
func findUnknown(n *yamlv3.Node, t reflect.Type, key string) int {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == nil || reflect.PointerTo(t).Implements(jsonUnmarshaler) {
		return 0
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yamlv3.MappingNode {
			return 0
		}
		fields := jsonFields(t)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			ft, ok := fields[k.Value]
			if !ok {
				if k.Value == key {
					return k.Line
				}
				continue
			}
			if l := findUnknown(v, ft, key); l > 0 {
				return l
			}
		}
	case reflect.Slice, reflect.Array:
		if n.Kind != yamlv3.SequenceNode {
			return 0
		}
		for _, c := range n.Content {
			if l := findUnknown(c, t.Elem(), key); l > 0 {
				return l
			}
		}
	case reflect.Map:
		if n.Kind != yamlv3.MappingNode {
			return 0
		}
		for i := 1; i < len(n.Content); i += 2 {
			if l := findUnknown(n.Content[i], t.Elem(), key); l > 0 {
				return l
			}
		}
	}
	return 0
}

var jsonUnmarshaler = reflect.TypeOf((*json.Unmarshaler)(nil)).Elem()

// jsonFields maps the JSON names of t's fields, embedded structs'
// included, to their types.
func jsonFields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		ft := f.Type
		if f.Anonymous && name == "" {
			for ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				for k, v := range jsonFields(ft) {
					out[k] = v
				}
				continue
			}
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		out[name] = ft
	}
	return out
}

// locateValue finds the line of the value a decoding error names, for
// errors raised inside a field's own decoder (a bad duration, an unknown
// fault type), which encoding/json reports without the field. It returns
// the line and the dotted path of the key holding the value, or 0 and ""
// when the value cannot be found.
func locateValue(doc *yamlv3.Node, msg string) (int, string) {
	var candidates []string
	if m := gotValue.FindStringSubmatch(msg); m != nil {
		candidates = append(candidates, m[1])
	}
	// The last quoted string is the offending value; earlier ones are
	// examples ("90s", "24h") or the kind ("latency").
	qs := quoted.FindAllStringSubmatch(msg, -1)
	for i := len(qs) - 1; i >= 0; i-- {
		candidates = append(candidates, qs[i][1])
	}
	for _, c := range candidates {
		if c == "" {
			continue
		}
		if n, path := findNode(doc, "", func(n *yamlv3.Node) bool { return sameValue(n, c) }); n != nil {
			return n.Line, path
		}
	}
	// "action.type is required": the mapping under action lacks type.
	if m := missingKey.FindStringSubmatch(msg); m != nil {
		if n, path := findNode(doc, "", func(n *yamlv3.Node) bool { return false }, withKey(m[1], m[2])); n != nil {
			return n.Line, path
		}
	}
	return 0, ""
}

// sameValue reports whether n is the value a decoder printed as v: a
// scalar's text, or a list's or mapping's JSON.
func sameValue(n *yamlv3.Node, v string) bool {
	if n.Kind == yamlv3.ScalarNode {
		return strings.TrimSpace(n.Value) == v
	}
	if (n.Kind != yamlv3.SequenceNode && n.Kind != yamlv3.MappingNode) || (v[0] != '[' && v[0] != '{') {
		return false
	}
	var x any
	if n.Decode(&x) != nil {
		return false
	}
	b, err := json.Marshal(x)
	return err == nil && string(b) == v
}

// withKey matches a mapping value under key parent that lacks key child.
func withKey(parent, child string) func(k, v *yamlv3.Node) bool {
	return func(k, v *yamlv3.Node) bool {
		if k.Value != parent || v.Kind != yamlv3.MappingNode {
			return false
		}
		for i := 0; i+1 < len(v.Content); i += 2 {
			if v.Content[i].Value == child {
				return false
			}
		}
		return true
	}
}

// findNode returns the first value node (depth first) that match
// accepts, or whose key and value pair accepts, with its dotted path.
// For a mapping value the line reported is its key's.
func findNode(n *yamlv3.Node, path string, match func(*yamlv3.Node) bool, pair ...func(k, v *yamlv3.Node) bool) (*yamlv3.Node, string) {
	switch n.Kind {
	case yamlv3.DocumentNode:
		for _, c := range n.Content {
			if f, p := findNode(c, path, match, pair...); f != nil {
				return f, p
			}
		}
	case yamlv3.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			p := join(path, k.Value)
			if match(v) {
				if v.Kind != yamlv3.ScalarNode {
					return &yamlv3.Node{Kind: v.Kind, Line: k.Line}, p
				}
				return v, p
			}
			for _, pm := range pair {
				if pm(k, v) {
					return &yamlv3.Node{Kind: v.Kind, Line: k.Line}, p
				}
			}
			if f, q := findNode(v, p, match, pair...); f != nil {
				return f, q
			}
		}
	case yamlv3.SequenceNode:
		for i, c := range n.Content {
			p := path + "[" + strconv.Itoa(i) + "]"
			if match(c) {
				return c, p
			}
			if f, q := findNode(c, p, match, pair...); f != nil {
				return f, q
			}
		}
	}
	return nil, ""
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
