package chaos

import (
	"flag"
	"testing"

	"github.com/idharness/idharness/suites/framework"
)

// suiteFlags are `go test ./suites/chaos -args --kubeconfig=FILE …`.
var suiteFlags = framework.RegisterFlags(flag.CommandLine)

func TestChaos(t *testing.T) {
	framework.RunSuite(t, "idharness chaos", suiteFlags)
}
