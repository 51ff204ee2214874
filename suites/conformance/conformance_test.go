package conformance

import (
	"flag"
	"testing"

	"github.com/idharness/idharness/suites/framework"
)

// suiteFlags are `go test ./suites/conformance -args --kubeconfig=FILE …`.
var suiteFlags = framework.RegisterFlags(flag.CommandLine)

func TestConformance(t *testing.T) {
	framework.RunSuite(t, "idharness conformance", suiteFlags)
}
