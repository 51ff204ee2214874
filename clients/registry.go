package clients

import (
	"fmt"
	"io/fs"
	"net/http"
	"path"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/idharness/idharness/pkg/yamlfile"
)

// Spec is one client: a credential of one SDK in one program.
type Spec struct {
	// Name is the client's name, unique across programs, e.g.
	// "py-azidentity-mi".
	Name string `json:"name"`
	// Args are appended to the program's command to select this client.
	Args []string `json:"args,omitempty"`
	// SDK is the package the client is built on, e.g. "azure-identity".
	SDK string `json:"sdk"`
	// Credential is the SDK type or command used, e.g.
	// "ManagedIdentityCredential".
	Credential string `json:"credential"`
	// Modes are the identity modes it supports.
	Modes []string `json:"modes"`
	// Selects are the ways it can name an identity; System means it can
	// take the default identity.
	Selects []IdentityKind `json:"selects"`
	// IdentityFromEnv says the client takes a user-assigned identity only
	// from AZURE_CLIENT_ID, which is process-wide: in process, clients of
	// it cannot each have an identity of their own.
	IdentityFromEnv bool `json:"identityFromEnv,omitempty"`
	// IMDSEnv, when set, overrides the program's local.imdsEnv.
	IMDSEnv []string `json:"imdsEnv,omitempty"`

	// Program is the program offering the client.
	Program *Program `json:"-"`
	// seq orders clients as declared: by program folder, then in file order.
	seq int
	// New builds a Go client in process; nil for clients of other
	// languages, which run as a Process.
	New func(Options, *http.Client) (Client, error) `json:"-"`
}

// Language returns the program's language.
func (s Spec) Language() string { return s.Program.Language }

// Supports reports whether the client can ask for an identity of kind
// in mode, and if not, why: the reason is shown as the matrix's "n/a".
func (s Spec) Supports(mode string, kind IdentityKind) (bool, string) {
	if !slices.Contains(s.Modes, mode) {
		return false, fmt.Sprintf("%s does not support mode %s", s.Credential, mode)
	}
	if kind == "" {
		kind = System
	}
	// Workload identity names the identity by client ID only; "system"
	// there means the one AZURE_CLIENT_ID names, as the webhook sets it.
	if mode == ModeWorkloadIdentity && kind == System && !slices.Contains(s.Selects, System) {
		kind = ByClientID
	}
	if !slices.Contains(s.Selects, kind) {
		return false, fmt.Sprintf("%s cannot select an identity by %s", s.Credential, kind)
	}
	return true, ""
}

// LocalIMDSEnv returns the variables a local run sets to the fake's URL.
func (s Spec) LocalIMDSEnv() []string {
	if len(s.IMDSEnv) > 0 {
		return s.IMDSEnv
	}
	return s.Program.Local.IMDSEnv
}

// Program is a client program: one folder with a client.yaml.
type Program struct {
	// Name is the program's name, its folder's name.
	Name string `json:"program"`
	// Language is "go", "python", "javascript", "java", "az-cli"…
	Language string `json:"language"`
	// Description says what it runs on, in a few words.
	Description string `json:"description"`
	// Runtime is what an image (and a local run) needs installed.
	Runtime Runtime `json:"runtime"`
	// Prepare is run in a writable copy of the folder to install the
	// program's pinned packages; empty for Go programs.
	PrepareCmd []string `json:"prepare,omitempty"`
	// Command starts the program, relative to the prepared folder; empty
	// for Go programs, which the probe runs in process.
	Command []string `json:"command,omitempty"`
	// Local says how a local run points the program at the fake.
	Local Local `json:"local"`
	// Ops are the protocol requests it answers (get_token, get_secret).
	Ops []string `json:"ops"`
	// Image says how the program's image is built.
	Image ImageRecipe `json:"image"`
	// Clients are the clients it offers.
	Clients []Spec `json:"clients"`

	// files is the program's folder, embedded.
	files fs.FS
}

// Runtime is what a program needs to run.
type Runtime struct {
	// Debian lists the Debian packages it needs.
	Debian []string `json:"debian,omitempty"`
	// MinVersion is the lowest runtime version it works with.
	MinVersion string `json:"minVersion,omitempty"`
}

// ImageRecipe says how a program's image is built: a Debian root with
// Runtime.Debian, the program in /client, prepared.
type ImageRecipe struct {
	// HostPackages are Debian packages installed on the building machine
	// whose files are copied into the image: a runtime Debian 12 lacks in
	// the version needed (Node.js 20).
	HostPackages []string `json:"hostPackages,omitempty"`
	// Prepare is where the prepare command runs: "image" (the default), in
	// the image's root with its own runtime (a Python venv must be made by
	// the interpreter it runs on); or "host", on the building machine, the
	// prepared folder then copied in (output that does not depend on where
	// it was built: a jar, pure-JavaScript node_modules).
	Prepare string `json:"prepare,omitempty"`
	// OnRequest, when set, says why the image is built only when a run
	// asks for it (idharness run --client-images): a very large image.
	OnRequest string `json:"onRequest,omitempty"`
}

// Local says how a program runs as a local process.
type Local struct {
	// IMDSEnv are the variables through which its SDKs can be pointed at
	// another metadata endpoint; a local run sets each to the fake's URL.
	IMDSEnv []string `json:"imdsEnv,omitempty"`
}

// Files returns the program's folder.
func (p *Program) Files() fs.FS { return p.files }

// Registry is the set of known clients.
type Registry struct {
	mu       sync.RWMutex
	programs map[string]*Program
	clients  map[string]*Spec
	goNew    map[string]func(Options, *http.Client) (Client, error)
}

// NewRegistry loads every program declared under root (a folder per
// program, each with a client.yaml) and attaches the Go constructors
// registered with RegisterGo.
func NewRegistry(root fs.FS) (*Registry, error) {
	r := &Registry{programs: map[string]*Program{}, clients: map[string]*Spec{}, goNew: map[string]func(Options, *http.Client) (Client, error){}}
	decls, err := fs.Glob(root, "*/client.yaml")
	if err != nil {
		return nil, err
	}
	for _, d := range decls {
		if err := r.load(root, d); err != nil {
			return nil, err
		}
	}
	goCtors.Lock()
	defer goCtors.Unlock()
	for name, fn := range goCtors.m {
		s, ok := r.clients[name]
		if !ok {
			return nil, fmt.Errorf("Go client %q is registered but no client.yaml declares it", name)
		}
		s.New = fn
	}
	for _, s := range r.clients {
		if s.Program.Language == "go" && s.New == nil {
			return nil, fmt.Errorf("%s/client.yaml declares Go client %q but its package does not RegisterGo it (is it imported by clients/all?)", s.Program.Name, s.Name)
		}
	}
	return r, nil
}

func (r *Registry) load(root fs.FS, decl string) error {
	data, err := fs.ReadFile(root, decl)
	if err != nil {
		return err
	}
	file := "clients/" + decl
	var p Program
	if err := yamlfile.Decode(file, data, &p); err != nil {
		return err
	}
	dir := path.Dir(decl)
	bad := func(field, format string, a ...any) error {
		return fmt.Errorf("%s: %s: %s", file, field, fmt.Sprintf(format, a...))
	}
	if p.Name != dir {
		return bad("program", "want the folder's name %q, got %q", dir, p.Name)
	}
	if p.Language == "" {
		return bad("language", "missing")
	}
	if p.Language != "go" && len(p.Command) == 0 {
		return bad("command", "missing: how the program starts, relative to its prepared folder")
	}
	if len(p.Clients) == 0 {
		return bad("clients", "declare at least one client")
	}
	if len(p.Ops) == 0 {
		p.Ops = []string{OpGetToken}
	}
	switch p.Image.Prepare {
	case "":
		p.Image.Prepare = "image"
	case "image", "host":
	default:
		return bad("image.prepare", "want image or host, got %q", p.Image.Prepare)
	}
	for _, op := range p.Ops {
		if op != OpGetToken && op != OpGetSecret {
			return bad("ops", "want get_token or get_secret, got %q", op)
		}
	}
	sub, err := fs.Sub(root, dir)
	if err != nil {
		return err
	}
	p.files = sub
	for i := range p.Clients {
		s := &p.Clients[i]
		f := fmt.Sprintf("clients[%d]", i)
		if s.Name == "" || strings.ToLower(s.Name) != s.Name || strings.ContainsAny(s.Name, " _/.") {
			return bad(f+".name", "want a lower-case name of letters, digits and dashes, got %q", s.Name)
		}
		if _, dup := r.clients[s.Name]; dup {
			return bad(f+".name", "client %q is declared twice (also in %s)", s.Name, r.clients[s.Name].Program.Name)
		}
		if len(s.Modes) == 0 {
			return bad(f+".modes", "missing")
		}
		for _, m := range s.Modes {
			if !slices.Contains(Modes(), m) {
				return bad(f+".modes", "want one of %s, got %q", strings.Join(Modes(), ", "), m)
			}
		}
		if len(s.Selects) == 0 {
			return bad(f+".selects", "missing")
		}
		for _, k := range s.Selects {
			if !slices.Contains(IdentityKinds(), k) {
				return bad(f+".selects", "want system, client_id, object_id or resource_id, got %q", k)
			}
		}
		if s.SDK == "" || s.Credential == "" {
			return bad(f, "sdk and credential are required")
		}
		s.Program = &p
		s.seq = len(r.clients)
		r.clients[s.Name] = s
	}
	r.programs[p.Name] = &p
	return nil
}

// Lookup returns the named client.
func (r *Registry) Lookup(name string) (Spec, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	s, ok := r.clients[name]
	if !ok {
		return Spec{}, fmt.Errorf("unknown client %q; want one of %s (idharness clients list)", name, strings.Join(r.namesLocked(), ", "))
	}
	return *s, nil
}

// Names lists every client, sorted.
func (r *Registry) Names() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.namesLocked()
}

func (r *Registry) namesLocked() []string {
	out := make([]string, 0, len(r.clients))
	for n := range r.clients {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Specs lists every client, ordered by language, then as declared (by
// folder, then in file order), as the matrix's columns are.
func (r *Registry) Specs() []Spec {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]Spec, 0, len(r.clients))
	for _, s := range r.clients {
		out = append(out, *s)
	}
	sort.Slice(out, func(i, j int) bool {
		li, lj := languageOrder(out[i].Language()), languageOrder(out[j].Language())
		if li != lj {
			return li < lj
		}
		return out[i].seq < out[j].seq
	})
	return out
}

// Programs lists every program, sorted by name.
func (r *Registry) Programs() []*Program {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]*Program, 0, len(r.programs))
	for _, p := range r.programs {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// For returns the clients that can ask for an identity of kind in mode,
// in Specs order; language, when not empty, keeps only that language's.
func (r *Registry) For(mode string, kind IdentityKind, language string) []Spec {
	var out []Spec
	for _, s := range r.Specs() {
		if language != "" && s.Language() != language {
			continue
		}
		if ok, _ := s.Supports(mode, kind); ok {
			out = append(out, s)
		}
	}
	return out
}

// languageOrder puts Go first (the clients compiled in), then the others
// by how often production pods run them.
func languageOrder(l string) int {
	if i := slices.Index([]string{"go", "python", "javascript", "java", "az-cli"}, l); i >= 0 {
		return i
	}
	return 100
}

// goCtors holds the constructors Go client packages register from init.
// It is the one registration point that must be global: a Go package can
// only contribute from init, as chaos faults and database/sql drivers do.
var goCtors = struct {
	sync.Mutex
	m map[string]func(Options, *http.Client) (Client, error)
}{m: map[string]func(Options, *http.Client) (Client, error){}}

// RegisterGo registers the constructor of the Go client name, declared
// in its folder's client.yaml. It panics on a duplicate, like
// chaos.Register.
func RegisterGo(name string, fn func(Options, *http.Client) (Client, error)) {
	goCtors.Lock()
	defer goCtors.Unlock()
	if _, dup := goCtors.m[name]; dup {
		panic("clients: Go client registered twice: " + name)
	}
	goCtors.m[name] = fn
}
