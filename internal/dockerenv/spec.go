package dockerenv

import (
	"encoding/json"
	"fmt"
	"slices"
)

// capSets are the capability sets of an OCI process (runtime-spec
// config.md#process).
var capSets = []string{"bounding", "effective", "inheritable", "permitted", "ambient"}

// FilterProcessCaps removes the capabilities in drop from every capability
// set of an OCI process object (the "process" member of a config.json, or
// the process.json that `runc exec --process` reads). Members it does not
// touch are copied through byte for byte.
func FilterProcessCaps(process []byte, drop []string) ([]byte, error) {
	var p map[string]json.RawMessage
	if err := json.Unmarshal(process, &p); err != nil {
		return nil, fmt.Errorf("decode OCI process: %w", err)
	}
	raw, ok := p["capabilities"]
	if !ok || len(drop) == 0 {
		return process, nil
	}
	var caps map[string]json.RawMessage
	if err := json.Unmarshal(raw, &caps); err != nil {
		return nil, fmt.Errorf("decode OCI process capabilities: %w", err)
	}
	changed := false
	for _, set := range capSets {
		r, ok := caps[set]
		if !ok {
			continue
		}
		var names []string
		if err := json.Unmarshal(r, &names); err != nil {
			return nil, fmt.Errorf("decode capability set %q: %w", set, err)
		}
		kept := slices.DeleteFunc(slices.Clone(names), func(n string) bool { return slices.Contains(drop, n) })
		if len(kept) == len(names) {
			continue
		}
		b, err := json.Marshal(kept)
		if err != nil {
			return nil, err
		}
		caps[set] = b
		changed = true
	}
	if !changed {
		return process, nil
	}
	b, err := json.Marshal(caps)
	if err != nil {
		return nil, err
	}
	p["capabilities"] = b
	return json.Marshal(p)
}

// FilterBundleCaps applies FilterProcessCaps to the "process" member of an
// OCI bundle's config.json.
func FilterBundleCaps(config []byte, drop []string) ([]byte, error) {
	var c map[string]json.RawMessage
	if err := json.Unmarshal(config, &c); err != nil {
		return nil, fmt.Errorf("decode OCI config: %w", err)
	}
	proc, ok := c["process"]
	if !ok {
		return config, nil
	}
	filtered, err := FilterProcessCaps(proc, drop)
	if err != nil {
		return nil, err
	}
	if string(filtered) == string(proc) {
		return config, nil
	}
	c["process"] = filtered
	return json.Marshal(c)
}

// RuncSpecFiles returns the OCI files a runc command line will read: the
// bundle's config.json for create and run, and the process file for exec.
// The bool tells whether the file holds a whole config (true) or only a
// process (false).
func RuncSpecFiles(args []string) map[string]bool {
	out := map[string]bool{}
	for i := 0; i < len(args); i++ {
		a := args[i]
		next := func() string {
			if i+1 < len(args) {
				return args[i+1]
			}
			return ""
		}
		switch {
		case a == "--bundle" || a == "-b":
			if n := next(); n != "" {
				out[n+"/config.json"] = true
			}
		case len(a) > len("--bundle=") && a[:len("--bundle=")] == "--bundle=":
			out[a[len("--bundle="):]+"/config.json"] = true
		case a == "--process" || a == "-p":
			if n := next(); n != "" {
				out[n] = false
			}
		case len(a) > len("--process=") && a[:len("--process=")] == "--process=":
			out[a[len("--process="):]] = false
		}
	}
	return out
}
