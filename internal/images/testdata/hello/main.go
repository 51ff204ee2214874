// Command hello is a tiny HTTP server used by the images tests and, until
// cmd/fakeimds exists, as a stand-in workload. It answers GET /healthz and
// GET /metadata/versions (with the Metadata: true header) on --addr.
package main

import (
	"flag"
	"fmt"
	"log"
	"net/http"
)

func main() {
	addr := flag.String("addr", ":8080", "listen address")
	flag.Parse()
	http.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ok") })
	http.HandleFunc("/metadata/versions", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Metadata") != "true" {
			http.Error(w, `{"error":"bad_request"}`, http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintln(w, `{"apiVersions":["2018-02-01"]}`)
	})
	log.Fatal(http.ListenAndServe(*addr, nil))
}
