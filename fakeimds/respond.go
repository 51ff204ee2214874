package fakeimds

import (
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/google/uuid"
)

// writeJSON writes v as the JSON body with status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, "encode response: "+err.Error(), http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h["Content-Type"] = []string{"application/json; charset=utf-8"}
	h["Content-Length"] = []string{strconv.Itoa(len(b))}
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// OAuthError is the error body of the IMDS, Arc and authority endpoints.
type OAuthError struct {
	Error       string `json:"error"`
	Description string `json:"error_description"`
	// NewestVersions lists supported API versions when the version was wrong.
	NewestVersions []string `json:"newest-versions,omitempty"`
}

// writeOAuthError answers with the {"error","error_description"} body real
// IMDS uses, and records the code in the journal.
func writeOAuthError(w http.ResponseWriter, status int, code, desc string) {
	note(w).Error = code
	writeJSON(w, status, OAuthError{Error: code, Description: desc})
}

// unixString formats t as IMDS does: decimal seconds since the epoch, as a JSON string.
func unixString(t time.Time) string { return strconv.FormatInt(t.Unix(), 10) }

// newCorrelationID returns a random GUID for error bodies that carry one.
func newCorrelationID() string { return uuid.NewString() }
