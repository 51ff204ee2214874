package yamlfile

import (
	"errors"
	"strings"
	"testing"
)

type item struct {
	Name  string  `json:"name"`
	Count int     `json:"count,omitempty"`
	Ratio float64 `json:"ratio,omitempty"`
}

type doc struct {
	Title string `json:"title"`
	Items []item `json:"items"`
	Extra struct {
		Count int `json:"count,omitempty"`
	} `json:"extra"`
}

const good = `title: t
items:
  - name: a
    count: 1
  - name: b
    count: 2
extra:
  count: 3
`

func TestDecodeLocatesErrors(t *testing.T) {
	for _, tc := range []struct {
		name, old, new string
		want           string // prefix: file:line: field
		contains       string
	}{
		{"second document", "extra:", "---\nextra:", "f.yaml:7: ", "second YAML document"},
		{"NaN", "count: 2", "count: 2\n    ratio: .NaN", "f.yaml:7: items[1].ratio: ", "finite number"},
		{"infinity", "count: 1", "count: 1\n    ratio: -.inf", "f.yaml:5: items[0].ratio: ", "finite number"},
		{"control character", "name: b", "name: b\x02", "f.yaml:5: ", "control characters"},
		{"unknown anchor", "name: b", "name: *b", "f.yaml:5: ", "unknown anchor"},
		{"wrong type in the second item", "count: 2", "count: two", "f.yaml:6: items[1].count: ", "want int"},
		{"wrong type in a later field", "count: 3", "count: [3]", "f.yaml:8: extra.count: ", "want int"},
		{"integer out of range", "count: 2", "count: 99999999999999999999", "f.yaml:6: items[1].count: ", "whole number"},
		{"unknown field named like a known one", "title: t", "title: t\ncount: 1", "f.yaml:2: count: ", "unknown field"},
		{"unknown field in a list item", "name: b", "name: b\n    title: x", "f.yaml:6: title: ", "unknown field"},
		{"syntax error on the first line", "title: t", "title: t: u", "f.yaml:1: ", "mapping values"},
		{"syntax error on a later line", "name: b", "name: b: c", "f.yaml:5: ", "mapping values"},
		{"duplicate key", "title: t", "title: t\ntitle: u", "f.yaml:2: ", "already set"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if !strings.Contains(good, tc.old) {
				t.Fatalf("good lacks %q", tc.old)
			}
			var d doc
			err := Decode("f.yaml", []byte(strings.Replace(good, tc.old, tc.new, 1)), &d)
			var ye *Error
			if !errors.As(err, &ye) || ye.Line == 0 {
				t.Fatalf("error %T %v, want an *Error with a line", err, err)
			}
			if !strings.HasPrefix(err.Error(), tc.want) || !strings.Contains(err.Error(), tc.contains) {
				t.Errorf("error\n  %v\nwant prefix\n  %s\nand %q in it", err, tc.want, tc.contains)
			}
		})
	}
}

func TestDecodeGood(t *testing.T) {
	var d doc
	if err := Decode("f.yaml", []byte(good), &d); err != nil {
		t.Fatal(err)
	}
	if d.Title != "t" || len(d.Items) != 2 || d.Items[1].Count != 2 || d.Extra.Count != 3 {
		t.Errorf("decoded %+v", d)
	}
	// A document end marker alone is not a second document.
	if err := Decode("f.yaml", []byte(good+"...\n"), &d); err != nil {
		t.Errorf("document end marker: %v", err)
	}
}
