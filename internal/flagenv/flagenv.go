// Package flagenv lets every flag of a command also be set by an
// environment variable (PREFIX_ and the flag's name in upper case, - as
// _), flags winning, so that the same binary is configured by args on a
// command line and by env in a pod spec.
package flagenv

import (
	"flag"
	"fmt"
	"strings"
)

// Name returns the environment variable of the flag named flagName.
func Name(prefix, flagName string) string {
	return prefix + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// Apply sets each flag of fs that the command line did not set from its
// environment variable, read with lookup; fs must be parsed already.
func Apply(fs *flag.FlagSet, prefix string, lookup func(string) (string, bool)) error {
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if given[f.Name] || err != nil {
			return
		}
		name := Name(prefix, f.Name)
		if v, ok := lookup(name); ok && v != "" {
			if e := f.Value.Set(v); e != nil {
				err = fmt.Errorf("%s=%q: %w", name, v, e)
			}
		}
	})
	return err
}
