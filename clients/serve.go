package clients

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
)

// Serve speaks PROTOCOL.md for an in-process client: it writes the
// hello line, answers each request read from in (concurrently, by id),
// and returns at the end of in once every answer is written. buildErr,
// when not nil, is why the client could not be built: every request is
// answered with it, as the protocol asks of a client program. This is
// how a Go client runs as a program of its own (probe serve NAME) and how
// the contract test drives Go clients exactly as it drives the others.
func Serve(ctx context.Context, spec Spec, c Client, buildErr error, in io.Reader, out io.Writer) error {
	var wmu sync.Mutex
	write := func(v any) error {
		b, err := json.Marshal(v)
		if err != nil {
			return err
		}
		wmu.Lock()
		defer wmu.Unlock()
		_, err = out.Write(append(b, '\n'))
		return err
	}
	if err := write(Hello{Type: "hello", Protocol: ProtocolVersion, Language: "go", Runtime: runtime.Version(), SDKs: goSDKs(spec.SDK)}); err != nil {
		return err
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var req request
		if err := json.Unmarshal(sc.Bytes(), &req); err != nil {
			return fmt.Errorf("request line is not JSON: %w", err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = write(answer(ctx, c, buildErr, req))
		}()
	}
	return sc.Err()
}

// answer carries out one request.
func answer(ctx context.Context, c Client, buildErr error, req request) reply {
	rep := reply{Type: "result", ID: req.ID}
	fail := func(err error) reply {
		rep.Error = err.Error()
		rep.ErrorType = errorType(err)
		return rep
	}
	if buildErr != nil {
		return fail(buildErr)
	}
	switch req.Type {
	case OpGetToken:
		tok, err := c.GetToken(ctx, req.Resource)
		if err != nil {
			return fail(err)
		}
		rep.OK, rep.Token = true, tok.Value
		if !tok.ExpiresOn.IsZero() {
			sec := float64(tok.ExpiresOn.UnixNano()) / 1e9
			rep.ExpiresOn = &sec
		}
	case OpGetSecret:
		sr, ok := c.(SecretReader)
		if !ok {
			return fail(errors.New("this client does not read secrets (ops: [get_token])"))
		}
		v, err := sr.GetSecret(ctx, req.VaultURL, req.Name)
		if err != nil {
			return fail(err)
		}
		rep.OK, rep.Value = true, v
	default:
		return fail(fmt.Errorf("unknown request type %q; want %s or %s", req.Type, OpGetToken, OpGetSecret))
	}
	return rep
}

// errorType names an error's type, as other languages name the
// exception class.
func errorType(err error) string {
	t := reflect.TypeOf(err)
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t.String()
}

// goSDKs returns the version of the client's SDK module this binary was
// built with (the Go version for the standard library's net/http), as
// the hello line reports it.
func goSDKs(sdk string) map[string]string {
	if !strings.Contains(sdk, ".") {
		return map[string]string{sdk: runtime.Version()}
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, m := range bi.Deps {
			if m.Path == sdk {
				v := m.Version
				if m.Replace != nil {
					v = m.Replace.Version
				}
				return map[string]string{sdk: v}
			}
		}
	}
	return map[string]string{sdk: goModuleVersions[sdk]}
}
