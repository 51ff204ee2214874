package fakeimds

import (
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"

	"github.com/idharness/idharness/fakeimds/config"
	"github.com/idharness/idharness/fakeimds/routes"
)

// InstancePath and VersionsPath are the instance metadata endpoints,
// from the route table the fault engine lints rules against.
const (
	InstancePath = routes.Instance
	VersionsPath = routes.Versions
)

// instanceError is the instance endpoint's error body, which, unlike the
// token endpoint's, has a single "error" sentence.
type instanceError struct {
	Error          string   `json:"error"`
	NewestVersions []string `json:"newest-versions,omitempty"`
}

func writeInstanceError(w http.ResponseWriter, status int, msg string, versions bool) {
	note(w).Error = msg
	e := instanceError{Error: msg}
	if versions {
		e.NewestVersions = newestVersions()
	}
	writeJSON(w, status, e)
}

// instanceDocument builds the /metadata/instance tree for the host: maps,
// lists and strings, so that sub-paths can walk it.
func instanceDocument(h config.Host) map[string]any {
	keys := make([]string, 0, len(h.Tags))
	for k := range h.Tags {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var tags []string
	tagsList := []any{}
	for _, k := range keys {
		tags = append(tags, k+":"+h.Tags[k])
		tagsList = append(tagsList, map[string]any{"name": k, "value": h.Tags[k]})
	}
	return map[string]any{
		"compute": map[string]any{
			"azEnvironment":     "AzurePublicCloud",
			"location":          h.Location,
			"name":              h.Name,
			"offer":             "0001-com-ubuntu-server-jammy",
			"osType":            h.OSType,
			"provider":          "Microsoft.Compute",
			"publisher":         "canonical",
			"resourceGroupName": h.ResourceGroup,
			"resourceId":        h.ResourceID(),
			"sku":               "22_04-lts-gen2",
			"subscriptionId":    h.SubscriptionID,
			"tags":              strings.Join(tags, ";"),
			"tagsList":          tagsList,
			"version":           "22.04.202401010",
			"vmId":              h.VMID,
			"vmScaleSetName":    "",
			"vmSize":            h.VMSize,
			"zone":              "",
			"osProfile":         map[string]any{"computerName": h.Name, "adminUsername": "azureuser", "disablePasswordAuthentication": "true"},
		},
		"network": map[string]any{
			"interface": []any{map[string]any{
				"ipv4": map[string]any{
					"ipAddress": []any{map[string]any{"privateIpAddress": h.PrivateIP, "publicIpAddress": ""}},
					"subnet":    []any{map[string]any{"address": subnetOf(h.PrivateIP), "prefix": "24"}},
				},
				"ipv6":       map[string]any{"ipAddress": []any{}},
				"macAddress": "000D3A1B2C3D",
			}},
		},
	}
}

func subnetOf(ip string) string {
	if i := strings.LastIndexByte(ip, '.'); i > 0 {
		return ip[:i] + ".0"
	}
	return ""
}

// serveInstance implements GET /metadata/instance[/path...].
func (s *Server) serveInstance(w http.ResponseWriter, req *http.Request) {
	if !s.instanceGuards(w, req) {
		return
	}
	q := req.URL.Query()
	if !supportedVersion(q.Get("api-version"), KnownAPIVersions[0]) {
		writeInstanceError(w, http.StatusBadRequest, "Bad request. api-version was not specified in the request or is invalid. For more information refer to aka.ms/azureimds", true)
		return
	}
	format := q.Get("format")
	if format == "" {
		format = "json"
	}
	if format != "json" && format != "text" {
		writeInstanceError(w, http.StatusBadRequest, "Bad request. Unsupported format '"+format+"'; use json or text", false)
		return
	}
	node, ok := walk(instanceDocument(s.cfg.Host), strings.TrimPrefix(strings.TrimPrefix(req.URL.Path, InstancePath), "/"))
	if !ok {
		writeInstanceError(w, http.StatusNotFound, "Not found", false)
		return
	}
	if format == "json" {
		writeJSON(w, http.StatusOK, node)
		return
	}
	leaf, isLeaf := node.(string)
	if !isLeaf {
		writeInstanceError(w, http.StatusBadRequest, "Bad request. Query parameter format=text is only supported for leaf nodes", false)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = fmt.Fprint(w, leaf)
}

// serveVersions implements GET /metadata/versions.
func (s *Server) serveVersions(w http.ResponseWriter, req *http.Request) {
	if !s.instanceGuards(w, req) {
		return
	}
	writeJSON(w, http.StatusOK, map[string][]string{"apiVersions": KnownAPIVersions})
}

// instanceGuards applies the checks every instance request passes.
func (s *Server) instanceGuards(w http.ResponseWriter, req *http.Request) bool {
	switch {
	case req.Method != http.MethodGet:
		w.Header().Set("Allow", http.MethodGet)
		writeInstanceError(w, http.StatusMethodNotAllowed, "Method not allowed", false)
	case forwardedFor(req):
		writeInstanceError(w, http.StatusBadRequest, "Bad request. Requests with X-Forwarded-For header are not allowed", false)
	case !metadataHeaderOK(req):
		writeInstanceError(w, http.StatusBadRequest, "Bad request. Required metadata header not specified", false)
	default:
		return true
	}
	return false
}

// walk follows a slash-separated path through maps and lists.
func walk(node any, path string) (any, bool) {
	for _, seg := range strings.Split(path, "/") {
		if seg == "" {
			continue
		}
		switch n := node.(type) {
		case map[string]any:
			v, ok := n[seg]
			if !ok {
				return nil, false
			}
			node = v
		case []any:
			i, err := strconv.Atoi(seg)
			if err != nil || i < 0 || i >= len(n) {
				return nil, false
			}
			node = n[i]
		default:
			return nil, false
		}
	}
	return node, true
}
