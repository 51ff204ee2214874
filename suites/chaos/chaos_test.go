package chaos

import (
	"testing"

	. "github.com/onsi/ginkgo/v2" //nolint:revive // ginkgo's DSL reads best unqualified.
	. "github.com/onsi/gomega"    //nolint:revive // gomega's matchers read best unqualified.
)

func TestChaos(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "idharness chaos")
}
