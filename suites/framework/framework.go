// Package framework is what idharness's ginkgo suites share: the stack
// they run against (deployed by `idharness run`, or connected to with
// --kubeconfig), conformance spec declaration with stable IDs and levels,
// running the probe as a pod and reading its result lines, and turning
// ginkgo's report into idharness's.
package framework

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"regexp"
	"strings"

	. "github.com/onsi/ginkgo/v2" //nolint:revive // ginkgo's DSL reads best unqualified.
	"k8s.io/client-go/tools/clientcmd"

	"github.com/idharness/idharness/fixtures"
	"github.com/idharness/idharness/internal/stack"
)

// Flags of `go test ./suites/...` (after -args). `idharness run` sets
// Preset instead.
var (
	kubeconfig = flag.String("kubeconfig", os.Getenv("IDH_KUBECONFIG"), "cluster with a deployed idharness stack (or IDH_KUBECONFIG); empty skips the suite")
	namespace  = flag.String("idh-namespace", fixtures.DefaultNamespace, "namespace of the idharness stack")
)

// Preset is the stack `idharness run` deployed; when nil the suite
// connects with --kubeconfig.
var Preset *stack.Stack

// Stack is the stack specs run against, set before the first spec.
var Stack *stack.Stack

// Setup connects to the stack; suites call it from BeforeSuite. Without a
// cluster the whole suite is skipped, so `go test ./...` stays green on a
// machine without one.
func Setup(ctx context.Context) {
	if Preset != nil {
		Stack = Preset
		return
	}
	if *kubeconfig == "" {
		Skip("no cluster: set --kubeconfig (go test ./suites/... -args --kubeconfig=FILE) or IDH_KUBECONFIG, or use `idharness run`")
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", *kubeconfig)
	if err != nil {
		Fail(fmt.Sprintf("kubeconfig %s: %v", *kubeconfig, err))
	}
	s, err := stack.Connect(ctx, cfg, *namespace, slog.Default())
	if err != nil {
		Fail(err.Error())
	}
	Stack = s
}

// Level is a conformance level.
type Level string

// The levels, as RFC 2119 uses them.
const (
	MUST   Level = "MUST"
	SHOULD Level = "SHOULD"
)

var specText = regexp.MustCompile(`^\[(IDH-[A-Z]+-\d{4})\] (MUST|SHOULD) (.+)$`)

// Conformance declares a conformance spec: a stable ID (IDH-CONF-0001), a
// level and a one-line statement that starts with the subject and
// contains the level ("a system-assigned token request MUST …"), plus
// labels for mode and area. The spec's text is "[ID] LEVEL statement".
func Conformance(id string, level Level, statement string, labels []string, body any) bool {
	if !regexp.MustCompile(`^IDH-[A-Z]+-\d{4}$`).MatchString(id) {
		panic("framework: bad spec ID " + id)
	}
	all := append([]string{"conformance", string(level)}, labels...)
	It(fmt.Sprintf("[%s] %s %s", id, level, statement), Label(all...), Offset(1), body)
	return true
}

// ParseSpecText splits a conformance spec's text into ID, level and
// statement; ok is false for other specs.
func ParseSpecText(text string) (id, level, statement string, ok bool) {
	// Ginkgo joins container texts with spaces; the spec text is last.
	if i := strings.LastIndex(text, "[IDH-"); i >= 0 {
		text = text[i:]
	}
	m := specText.FindStringSubmatch(text)
	if m == nil {
		return "", "", "", false
	}
	return m[1], m[2], m[3], true
}
