package scenario

import (
	"regexp"
	"strconv"
	"strings"

	yamlv3 "go.yaml.in/yaml/v3"
)

// quoted finds the value a decoding error complains about: encoding/json
// and the duration and rule decoders quote it ("10x", "laterncy").
var quoted = regexp.MustCompile(`"([^"]*)"`)

// gotValue finds an unquoted value after "got ", as in
// `want a duration string such as "90s" or "24h", got 10`.
var gotValue = regexp.MustCompile(`got ([^\s,;]+)\s*$`)

// yamlLinePattern finds the line the YAML parser names in a syntax or
// duplicate-key error.
var yamlLinePattern = regexp.MustCompile(`line (\d+): (.*)`)

// yamlLine moves the line number of a YAML parser error into the
// file:line position: "line 3: key "title" already set in map".
func yamlLine(msg string) (int, string, bool) {
	m := yamlLinePattern.FindStringSubmatch(msg)
	if m == nil {
		return 0, "", false
	}
	n, err := strconv.Atoi(m[1])
	if err != nil || n <= 0 {
		return 0, "", false
	}
	return n, strings.TrimSpace(m[2]), true
}

// locateValue finds the line of the value a decoding error names, for
// errors raised inside a field's own decoder (a bad duration, an unknown
// fault type), which encoding/json reports without the field. It returns
// the line and the dotted path of the key holding the value, or 0 and
// field when the value cannot be found.
func locateValue(data []byte, msg, field string) (int, string) {
	var root yamlv3.Node
	if yamlv3.Unmarshal(data, &root) != nil {
		return 0, field
	}
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
		if line, path := findScalar(&root, c, ""); line > 0 {
			return line, path
		}
	}
	return 0, field
}

// findScalar returns the line and path of the first mapping value (depth
// first) equal to value.
func findScalar(n *yamlv3.Node, value, path string) (int, string) {
	switch n.Kind {
	case yamlv3.DocumentNode:
		for _, c := range n.Content {
			if l, p := findScalar(c, value, path); l > 0 {
				return l, p
			}
		}
	case yamlv3.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			p := k.Value
			if path != "" {
				p = path + "." + k.Value
			}
			if v.Kind == yamlv3.ScalarNode && strings.TrimSpace(v.Value) == value {
				return v.Line, p
			}
			if l, q := findScalar(v, value, p); l > 0 {
				return l, q
			}
		}
	case yamlv3.SequenceNode:
		for i, c := range n.Content {
			p := path + "[" + strconv.Itoa(i) + "]"
			if c.Kind == yamlv3.ScalarNode && strings.TrimSpace(c.Value) == value {
				return c.Line, p
			}
			if l, q := findScalar(c, value, p); l > 0 {
				return l, q
			}
		}
	}
	return 0, ""
}
