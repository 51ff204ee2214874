package fakeimds

import (
	"net/http"
	"net/url"
	"strconv"

	"github.com/idharness/idharness/fakeimds/identity"
)

// AppServiceAPIVersion is the only API version of the App Service and
// Container Apps identity endpoint that current clients use.
const AppServiceAPIVersion = "2019-08-01"

// AppServiceToken is that endpoint's 200 body. expires_on and not_before
// are epoch seconds as strings, as the service sends them.
type AppServiceToken struct {
	AccessToken string `json:"access_token"`
	ExpiresOn   string `json:"expires_on"`
	NotBefore   string `json:"not_before"`
	Resource    string `json:"resource"`
	TokenType   string `json:"token_type"`
	ClientID    string `json:"client_id"`
}

// appServiceError is the App Service error body.
type appServiceError struct {
	StatusCode    int    `json:"statusCode"`
	Message       string `json:"message"`
	CorrelationID string `json:"correlationId"`
}

var appServiceSelectors = []struct {
	name string
	kind identity.Kind
}{
	{"client_id", identity.ByClientID},
	{"principal_id", identity.ByObjectID},
	{"object_id", identity.ByObjectID},
	{"mi_res_id", identity.ByResourceID},
}

func (s *Server) writeAppServiceError(w http.ResponseWriter, status int, msg string) {
	note(w).Error = msg
	writeJSON(w, status, appServiceError{StatusCode: status, Message: msg, CorrelationID: newCorrelationID()})
}

// serveAppService implements the IDENTITY_ENDPOINT of App Service and
// Container Apps.
func (s *Server) serveAppService(w http.ResponseWriter, req *http.Request) {
	// The mux matches escaped letters (/msi/%74oken) as the letters; the
	// endpoint answers its own spelling only, as IMDS does.
	if !exactPath(req, s.cfg.Faces.AppService.Path) {
		s.writeAppServiceError(w, http.StatusNotFound, "Not found.")
		return
	}
	if req.Method != http.MethodGet {
		w.Header().Set("Allow", http.MethodGet)
		s.writeAppServiceError(w, http.StatusMethodNotAllowed, "The requested resource does not support http method '"+req.Method+"'.")
		return
	}
	if req.Header.Get("X-Identity-Header") != s.cfg.Faces.AppService.Secret {
		s.writeAppServiceError(w, http.StatusUnauthorized, "The X-IDENTITY-HEADER header is missing or does not match IDENTITY_HEADER.")
		return
	}
	q, err := url.ParseQuery(req.URL.RawQuery)
	if err != nil {
		s.writeAppServiceError(w, http.StatusBadRequest, "Malformed query string.")
		return
	}
	if v := q.Get("api-version"); v != AppServiceAPIVersion {
		s.writeAppServiceError(w, http.StatusBadRequest, "Unsupported api-version '"+v+"'; this endpoint supports "+AppServiceAPIVersion+".")
		return
	}
	resource := q.Get("resource")
	if resource == "" {
		s.writeAppServiceError(w, http.StatusBadRequest, "The resource parameter is required.")
		return
	}
	if msg := resourceTooLong(resource); msg != "" {
		s.writeAppServiceError(w, http.StatusBadRequest, msg+".")
		return
	}
	note(w).Resource = resource
	sel, err := parseSelector(q, appServiceSelectors)
	if err != nil {
		s.writeAppServiceError(w, http.StatusBadRequest, err.Error())
		return
	}
	id, err := s.store.Resolve(sel)
	if err != nil {
		note(w).Selector = sel.String()
		s.writeAppServiceError(w, http.StatusBadRequest, "Unable to load the proper Managed Identity.")
		return
	}
	noteIdentity(w, sel, id)
	tok, ok := s.issue(w, id, resource, s.minter.Now())
	if !ok {
		return
	}
	writeJSON(w, http.StatusOK, AppServiceToken{
		AccessToken: tok.Raw,
		ExpiresOn:   strconv.FormatInt(tok.ExpiresOn.Unix(), 10),
		NotBefore:   strconv.FormatInt(tok.NotBefore.Unix(), 10),
		Resource:    resource,
		TokenType:   "Bearer",
		ClientID:    id.ClientID,
	})
}
