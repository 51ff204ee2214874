package chaos

import (
	"encoding/json"
	"net/http"
	"strconv"
	"time"
)

// imdsErrorBodies are the {"error","error_description"} answers real IMDS
// gives for each status a fault can inject.
var imdsErrorBodies = map[int][2]string{
	http.StatusBadRequest:          {"invalid_request", "Bad request"},
	http.StatusUnauthorized:        {"unauthorized", "Unauthorized"},
	http.StatusForbidden:           {"forbidden", "Forbidden"},
	http.StatusNotFound:            {"not_found", "IMDS endpoint is updating"},
	http.StatusRequestTimeout:      {"request_timeout", "Request timed out"},
	http.StatusGone:                {"gone", "IMDS is going through updates"},
	http.StatusTooManyRequests:     {"invalid_request", "Temporarily throttled, too many requests"},
	http.StatusInternalServerError: {"unknown_error", "Internal server error"},
	http.StatusBadGateway:          {"bad_gateway", "Bad gateway"},
	http.StatusServiceUnavailable:  {"service_unavailable", "Service unavailable"},
	http.StatusGatewayTimeout:      {"gateway_timeout", "Gateway timeout"},
}

// ErrorResponse returns the real IMDS answer for status, with the given
// code and description overriding the defaults when not empty, and a
// Retry-After header when retryAfter is positive.
func ErrorResponse(status int, code, desc string, retryAfter time.Duration) *Response {
	def, ok := imdsErrorBodies[status]
	if !ok {
		def = [2]string{"error", http.StatusText(status)}
	}
	if code == "" {
		code = def[0]
	}
	if desc == "" {
		desc = def[1]
	}
	body, _ := json.Marshal(struct {
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}{code, desc})
	h := http.Header{"Content-Type": {"application/json; charset=utf-8"}}
	if retryAfter > 0 {
		h.Set("Retry-After", strconv.Itoa(int((retryAfter+time.Second-1)/time.Second)))
	}
	return &Response{Status: status, Header: h, Body: body}
}
