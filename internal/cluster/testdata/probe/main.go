// Command probe runs HTTP checks from inside a pod for idharness's cluster
// smoke test and exits non-zero if any check does not end as expected.
//
// Each argument is one check, "NAME EXPECT URL", where EXPECT is a status
// code the response must have (optionally "CODE~TEXT": and its body must
// contain TEXT), or "fail" when the request must not get any response. Requests to https://kubernetes.default.svc carry the pod's
// service account token and trust the cluster CA; every request carries
// "Metadata: true" as IMDS requires. A check that does not yet pass is
// retried until -timeout.
//
// "probe serve ADDR" instead serves GET /whoami, answering with the client's
// address as the server sees it.
package main

import (
	"crypto/tls"
	"crypto/x509"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

const saDir = "/var/run/secrets/kubernetes.io/serviceaccount"

func main() {
	timeout := flag.Duration("timeout", 60*time.Second, "how long to retry each check")
	flag.Parse()
	if flag.Arg(0) == "serve" {
		http.HandleFunc("/whoami", func(w http.ResponseWriter, r *http.Request) {
			host, _, _ := net.SplitHostPort(r.RemoteAddr)
			fmt.Fprintln(w, host)
		})
		log.Fatal(http.ListenAndServe(flag.Arg(1), nil))
	}
	failed := 0
	for _, spec := range flag.Args() {
		f := strings.Fields(spec)
		if len(f) != 3 {
			fmt.Printf("BAD   %q: want \"NAME EXPECT URL\"\n", spec)
			failed++
			continue
		}
		if msg, ok := check(f[0], f[1], f[2], *timeout); ok {
			fmt.Printf("PASS  %s: %s\n", f[0], msg)
		} else {
			fmt.Printf("FAIL  %s: %s\n", f[0], msg)
			failed++
		}
	}
	if failed > 0 {
		fmt.Printf("probe: %d check(s) failed\n", failed)
		os.Exit(1)
	}
	fmt.Println("probe: all checks passed")
}

func client(url string) (*http.Client, string, error) {
	c := &http.Client{Timeout: 5 * time.Second}
	if !strings.HasPrefix(url, "https://kubernetes.default") {
		return c, "", nil
	}
	ca, err := os.ReadFile(saDir + "/ca.crt")
	if err != nil {
		return nil, "", err
	}
	token, err := os.ReadFile(saDir + "/token")
	if err != nil {
		return nil, "", err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	c.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
	return c, strings.TrimSpace(string(token)), nil
}

func check(name, expect, url string, timeout time.Duration) (string, bool) {
	expect, want, _ := strings.Cut(expect, "~")
	c, token, err := client(url)
	if err != nil {
		return err.Error(), false
	}
	deadline := time.Now().Add(timeout)
	last := ""
	for {
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		req.Header.Set("Metadata", "true")
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := c.Do(req)
		switch {
		case err != nil && expect == "fail":
			return "no response as expected (" + err.Error() + ")", true
		case err != nil:
			last = err.Error()
		default:
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 300))
			resp.Body.Close()
			last = fmt.Sprintf("%d %s", resp.StatusCode, strings.TrimSpace(string(body)))
			if code, _ := strconv.Atoi(expect); code == resp.StatusCode {
				if strings.Contains(string(body), want) {
					return last, true
				}
				return fmt.Sprintf("%s: body lacks %q", last, want), false
			}
			if expect == "fail" {
				return "unexpected response " + last, false
			}
		}
		if expect == "fail" || time.Now().After(deadline) {
			return last, false
		}
		time.Sleep(time.Second)
	}
}
