// Package framework is what idharness's ginkgo suites share: a per-spec
// handle on the stack they run against (deployed by `idharness run`, or
// connected to with --kubeconfig), conformance spec declaration with
// stable IDs and levels, running the probe as a pod and reading its
// result lines, and turning ginkgo's report into idharness's.
//
// A container takes a handle as Kubernetes' e2e specs take theirs
// (f := framework.NewDefaultFramework(...)):
//
//	var _ = Describe("IMDS managed identity", func() {
//		f := framework.New()
//		Conformance("IDH-CONF-0001", MUST, "…", labels, func(ctx SpecContext) {
//			run := f.RunProbe(ctx, f.Namespace(ctx), framework.Probe{…})
//		})
//	})
//
// The run's options — the stack, the progress writer, the report — are
// passed to RunConnected (or, for `go test`, to RunSuite from the flags
// RegisterFlags defines) and reach the handles through the run itself.
// Ginkgo's spec tree is built once per process and its nodes take no
// arguments, so the run being executed is the one piece of process state
// here: set only by RunConnected and RunSuite from their arguments, for
// the duration of the run, and read only by the handles' BeforeEach.
package framework

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"

	. "github.com/onsi/ginkgo/v2" //nolint:revive // ginkgo's DSL reads best unqualified.
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/idharness/idharness/fixtures"
	"github.com/idharness/idharness/internal/stack"
	"github.com/idharness/idharness/internal/startgate"
)

// Flags are the options of `go test ./suites/...` (after -args).
type Flags struct {
	// Kubeconfig names a cluster with a deployed idharness stack; empty
	// skips the suite.
	Kubeconfig string
	// Namespace is the stack's namespace.
	Namespace string
	// InCluster connects with the pod's own service account instead of
	// Kubeconfig: the in-cluster runner (internal/incluster).
	InCluster bool
	// ReportDir, when set, receives report.json, junit.xml and summary.md.
	ReportDir string
}

// RegisterFlags defines the suites' flags on fs (a suite's test file
// passes flag.CommandLine) and returns what they fill in once fs is
// parsed.
func RegisterFlags(fs *flag.FlagSet) *Flags {
	f := &Flags{}
	fs.StringVar(&f.Kubeconfig, "kubeconfig", os.Getenv("IDH_KUBECONFIG"), "cluster with a deployed idharness stack (or IDH_KUBECONFIG); empty skips the suite")
	fs.StringVar(&f.Namespace, "idh-namespace", fixtures.DefaultNamespace, "namespace of the idharness stack")
	fs.StringVar(&f.ReportDir, "idh-report-dir", "", "write report.json, junit.xml and summary.md here")
	return f
}

// source is where one run's specs get their stack: one connected to from
// the flags at the first spec that needs it (and then kept, so that a run
// connects once), or, in this package's own tests, a preset one.
type source struct {
	preset *stack.Stack
	flags  Flags
	// noHost is RunOptions.NoHost.
	noHost string
	// gate is RunOptions.StartGate's (nil or open: no other process).
	gate *startgate.Gate

	mu        sync.Mutex
	connected *stack.Stack
}

// stack returns the run's stack, skipping the spec when there is no
// cluster and failing it when the cluster cannot be reached.
func (s *source) stack(ctx context.Context) *stack.Stack {
	if s.preset != nil {
		return s.preset
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.connected != nil {
		return s.connected
	}
	if s.flags.Kubeconfig == "" && !s.flags.InCluster {
		Skip("no cluster: set --kubeconfig (go test ./suites/... -args --kubeconfig=FILE) or IDH_KUBECONFIG, or use `idharness run`")
	}
	cfg, err := s.flags.restConfig()
	if err != nil {
		Fail(err.Error())
	}
	st, err := stack.Connect(ctx, cfg, s.flags.Namespace, slog.Default())
	if err != nil {
		Fail(err.Error())
	}
	s.connected = st
	return st
}

// restConfig is the configuration of the cluster f names: the pod's own
// service account when f.InCluster, else f.Kubeconfig's.
func (f Flags) restConfig() (*rest.Config, error) {
	if f.InCluster {
		cfg, err := rest.InClusterConfig()
		if err != nil {
			return nil, fmt.Errorf("in-cluster configuration (is this a pod with a service account token?): %w", err)
		}
		return cfg, nil
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", f.Kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("kubeconfig %s: %w", f.Kubeconfig, err)
	}
	return cfg, nil
}

// NoHost is why the running run cannot reach the machine behind the
// cluster's nodes (it runs in a pod: RunOptions.NoHost), or empty when it
// can. Specs that need the host (a kind node's container, a node's
// network namespace) skip with this reason.
func NoHost() string {
	if src := running.Load(); src != nil {
		return src.noHost
	}
	return ""
}

// seed returns the run's seed, when a stack is known.
func (s *source) seed() int64 {
	if s.preset != nil {
		return s.preset.Seed
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.connected != nil {
		return s.connected.Seed
	}
	return 0
}

// running is the run being executed (see the package comment).
var running atomic.Pointer[source]

// Framework is a spec's handle on the stack: New gives a container one,
// and before each of its specs (or earlier, from a BeforeAll, by Setup) it
// is filled in from the run being executed. Its methods create the
// spec's namespaces, run probe pods and bind pod identities, and tell the
// spec what it may know of the stack (handle.go: the cluster's client,
// the nodes and identities, each node's fakeimds control client, the
// workload identity authority) in types other modules can name; the
// stack itself is not handed out.
type Framework struct {
	stack *stack.Stack
	// podIDDyn creates the pod identity objects; set by
	// RequirePodIdentityAgent.
	podIDDyn dynamic.Interface
	// gate is the run's start gate (RunOptions.StartGate).
	gate *startgate.Gate
}

// New returns a handle for the specs of the container whose body calls
// it, and registers a BeforeEach that connects it to the run's stack:
// without a cluster the specs are skipped, so that `go test ./...` stays
// green on a machine without one.
func New() *Framework {
	f := &Framework{}
	BeforeEach(func(ctx SpecContext) { f.Setup(ctx) }, Offset(1))
	return f
}

// Setup connects the handle to the run's stack, as New's BeforeEach does;
// a container's BeforeAll that needs the stack before its first spec calls
// it. It is cheap once connected.
func (f *Framework) Setup(ctx context.Context) {
	if f.stack != nil {
		return
	}
	src := running.Load()
	if src == nil {
		Fail("framework: no run: run the specs with framework.RunConnected or framework.RunSuite")
	}
	f.stack = src.stack(ctx)
	f.gate = src.gate
}

// Level is a conformance level.
type Level string

// The levels, as RFC 2119 uses them.
const (
	MUST   Level = "MUST"
	SHOULD Level = "SHOULD"
)

var (
	specText = regexp.MustCompile(`^\[(IDH-[A-Z]+-\d{4})\] (MUST|SHOULD) (.+)$`)
	specID   = regexp.MustCompile(`^IDH-[A-Z]+-\d{4}$`)
)

// Conformance declares a conformance spec: a stable ID (IDH-CONF-0001), a
// level and a one-line statement that starts with the subject and
// contains the level ("a system-assigned token request MUST …"), plus
// labels for mode and area. The spec's text is "[ID] LEVEL statement".
func Conformance(id string, level Level, statement string, labels []string, body any) bool {
	if !specID.MatchString(id) {
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
