package fakeimds

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/idharness/idharness/fakeimds/api"
	"github.com/idharness/idharness/fakeimds/chaos"
	"github.com/idharness/idharness/fakeimds/config"
	"github.com/idharness/idharness/fakeimds/identity"
	"github.com/idharness/idharness/fakeimds/journal"
	"github.com/idharness/idharness/fakeimds/routes"
)

func controlError(w http.ResponseWriter, status int, field, format string, a ...any) {
	writeJSON(w, status, api.Error{Error: fmt.Sprintf(format, a...), Field: field})
}

// decodeBody strictly decodes a JSON request body into v.
func decodeBody(w http.ResponseWriter, req *http.Request, v any) bool {
	dec := json.NewDecoder(io.LimitReader(req.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		controlError(w, http.StatusBadRequest, "", "invalid JSON body: %v", err)
		return false
	}
	return true
}

// selectorFromQuery reads which identity a control request names: one of
// client_id, object_id or resource_id.
func selectorFromQuery(req *http.Request) (identity.Selector, error) {
	q := req.URL.Query()
	var sels []identity.Selector
	for _, p := range []struct {
		name string
		kind identity.Kind
	}{{"client_id", identity.ByClientID}, {"object_id", identity.ByObjectID}, {"resource_id", identity.ByResourceID}} {
		if v := q.Get(p.name); v != "" {
			sels = append(sels, identity.Selector{Kind: p.kind, Value: v})
		}
	}
	if len(sels) != 1 {
		return identity.Selector{}, errors.New("name exactly one identity with client_id, object_id or resource_id")
	}
	return sels[0], nil
}

func (s *Server) buildControlMux() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+api.PathHealth, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = io.WriteString(w, "ok\n")
	})
	mux.Handle("GET "+api.PathMetrics, s.metrics.handler())
	mux.HandleFunc("GET "+api.PathConfig, func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, http.StatusOK, s.cfg) })
	mux.HandleFunc("GET "+api.PathIdentities, func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, http.StatusOK, s.store.List()) })
	mux.HandleFunc("POST "+api.PathIdentities, s.controlAttach)
	mux.HandleFunc("DELETE "+api.PathIdentities, s.controlDetach)
	mux.HandleFunc("PATCH "+api.PathIdentities, s.controlPatch)
	mux.HandleFunc("PUT "+api.PathSystem, s.controlSetSystem)
	mux.HandleFunc("DELETE "+api.PathSystem, func(w http.ResponseWriter, _ *http.Request) {
		s.store.SetSystem(nil)
		s.minter.Flush()
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET "+api.PathTokens, func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, http.StatusOK, s.tokenSettings()) })
	mux.HandleFunc("PUT "+api.PathTokens, s.controlTokens)
	mux.HandleFunc("POST "+api.PathTokensFlush, func(w http.ResponseWriter, _ *http.Request) {
		s.minter.Flush()
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET "+api.PathJournal, s.controlJournal)
	mux.HandleFunc("GET "+api.PathJournalWatch, s.controlJournalStream)
	mux.HandleFunc("DELETE "+api.PathJournal, func(w http.ResponseWriter, _ *http.Request) {
		s.journal.Reset()
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("POST "+api.PathReset, s.controlReset)
	mux.HandleFunc("GET "+api.PathChaos, func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, api.ChaosState{Seed: s.engine.Seed(), Throttle: s.limiter.Limits(), Rules: s.engine.Rules()})
	})
	mux.HandleFunc("GET "+api.PathFaults, func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, http.StatusOK, s.engine.Rules()) })
	mux.HandleFunc("POST "+api.PathFaults, s.controlAddFaults)
	mux.HandleFunc("DELETE "+api.PathFaults, s.controlRemoveFaults)
	mux.HandleFunc("GET "+api.PathThrottle, func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, http.StatusOK, s.limiter.Limits()) })
	mux.HandleFunc("PUT "+api.PathThrottle, s.controlThrottle)
	return mux
}

func (s *Server) tokenSettings() api.TokenSettings {
	on, rb := s.minter.CacheSettings()
	return api.TokenSettings{Lifetime: &config.Duration{Duration: s.minter.Lifetime()}, Cache: &on, RefreshBefore: &config.Duration{Duration: rb}}
}

// identityFromControl validates an identity given to the control API the
// same way the configuration file's identities are validated.
func (s *Server) identityFromControl(in config.Identity, system bool) (identity.Identity, error) {
	c := s.cfg
	c.SystemAssigned, c.UserAssigned = nil, nil
	if system {
		c.SystemAssigned = &in
	} else {
		c.UserAssigned = []config.Identity{in}
	}
	if err := c.Validate(); err != nil {
		return identity.Identity{}, err
	}
	sys, users := c.Identities()
	if system {
		return *sys, nil
	}
	return users[0], nil
}

func (s *Server) writeValidation(w http.ResponseWriter, err error) {
	var fe *config.FieldError
	if errors.As(err, &fe) {
		field := fe.Field
		if i := strings.IndexByte(field, '.'); i >= 0 {
			field = field[i+1:] // drop userAssigned[0] / systemAssigned
		}
		controlError(w, http.StatusBadRequest, field, "%s", fe.Problem)
		return
	}
	controlError(w, http.StatusBadRequest, "", "%v", err)
}

func (s *Server) controlAttach(w http.ResponseWriter, req *http.Request) {
	var in config.Identity
	if !decodeBody(w, req, &in) {
		return
	}
	id, err := s.identityFromControl(in, false)
	if err != nil {
		s.writeValidation(w, err)
		return
	}
	if err := s.store.Attach(id); err != nil {
		controlError(w, http.StatusConflict, "clientId", "%v", err)
		return
	}
	s.log.Info("identity attached", "name", id.Name, "clientId", id.ClientID)
	writeJSON(w, http.StatusCreated, id)
}

func (s *Server) controlDetach(w http.ResponseWriter, req *http.Request) {
	sel, err := selectorFromQuery(req)
	if err != nil {
		controlError(w, http.StatusBadRequest, "", "%v", err)
		return
	}
	id, err := s.store.Detach(sel)
	if err != nil {
		controlError(w, http.StatusNotFound, "", "no user-assigned identity with %s is attached", sel)
		return
	}
	s.minter.Flush()
	s.log.Info("identity detached", "name", id.Name, "clientId", id.ClientID)
	writeJSON(w, http.StatusOK, id)
}

func (s *Server) controlPatch(w http.ResponseWriter, req *http.Request) {
	sel, err := selectorFromQuery(req)
	if err != nil {
		controlError(w, http.StatusBadRequest, "", "%v", err)
		return
	}
	var p api.IdentityPatch
	if !decodeBody(w, req, &p) {
		return
	}
	if p.TokenLifetime != nil && p.TokenLifetime.Duration < 0 {
		controlError(w, http.StatusBadRequest, "tokenLifetime", "must not be negative")
		return
	}
	id, err := s.store.Update(sel, func(id *identity.Identity) {
		if p.TokenLifetime != nil {
			id.TokenLifetime = p.TokenLifetime.Duration
		}
	})
	if err != nil {
		controlError(w, http.StatusNotFound, "", "no identity with %s is attached", sel)
		return
	}
	writeJSON(w, http.StatusOK, id)
}

func (s *Server) controlSetSystem(w http.ResponseWriter, req *http.Request) {
	var in config.Identity
	if !decodeBody(w, req, &in) {
		return
	}
	id, err := s.identityFromControl(in, true)
	if err != nil {
		s.writeValidation(w, err)
		return
	}
	s.store.SetSystem(&id)
	s.minter.Flush()
	writeJSON(w, http.StatusOK, id)
}

func (s *Server) controlTokens(w http.ResponseWriter, req *http.Request) {
	var in api.TokenSettings
	if !decodeBody(w, req, &in) {
		return
	}
	if in.Lifetime != nil && in.Lifetime.Duration <= 0 {
		controlError(w, http.StatusBadRequest, "lifetime", "must be positive, e.g. 24h or 90s")
		return
	}
	if in.RefreshBefore != nil && in.RefreshBefore.Duration < 0 {
		controlError(w, http.StatusBadRequest, "refreshBefore", "must not be negative")
		return
	}
	if in.Lifetime != nil {
		s.minter.SetLifetime(in.Lifetime.Duration)
	}
	on, rb := s.minter.CacheSettings()
	if in.Cache != nil {
		on = *in.Cache
	}
	if in.RefreshBefore != nil {
		rb = in.RefreshBefore.Duration
	}
	s.minter.SetCache(on, rb)
	writeJSON(w, http.StatusOK, s.tokenSettings())
}

func sinceParam(req *http.Request) (uint64, error) {
	v := req.URL.Query().Get("since")
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("since: want a sequence number, got %q", v)
	}
	return n, nil
}

func (s *Server) controlJournal(w http.ResponseWriter, req *http.Request) {
	since, err := sinceParam(req)
	if err != nil {
		controlError(w, http.StatusBadRequest, "since", "%v", err)
		return
	}
	entries := filterRemotes(s.journal.Since(since), req.URL.Query()["remote"])
	if entries == nil {
		entries = []journal.Entry{}
	}
	writeJSON(w, http.StatusOK, entries)
}

// filterRemotes keeps the entries whose remote address is one of hosts
// (IP addresses, without ports), all of them when hosts is empty: a spec
// wants its own pods' requests, not the whole journal, which grows to
// thousands of entries over a suite and went whole through the API
// server's proxy once per probe pod.
func filterRemotes(entries []journal.Entry, hosts []string) []journal.Entry {
	if len(hosts) == 0 {
		return entries
	}
	out := entries[:0]
	for _, e := range entries {
		if slices.Contains(hosts, e.RemoteHost()) {
			out = append(out, e)
		}
	}
	return out
}

// controlJournalStream sends entries as JSON lines, first those after
// ?since, then new ones as they come, until the client goes away.
func (s *Server) controlJournalStream(w http.ResponseWriter, req *http.Request) {
	since, err := sinceParam(req)
	if err != nil {
		controlError(w, http.StatusBadRequest, "since", "%v", err)
		return
	}
	// Subscribe before reading the backlog so nothing falls in between;
	// the sequence number drops what both would deliver.
	live, cancel := s.journal.Subscribe(1024)
	defer cancel()
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	enc := json.NewEncoder(w)
	last := since
	for _, e := range s.journal.Since(since) {
		if enc.Encode(e) != nil {
			return
		}
		last = e.Seq
	}
	_ = rc.Flush()
	keepalive := time.NewTicker(15 * time.Second)
	defer keepalive.Stop()
	for {
		select {
		case <-req.Context().Done():
			return
		case e := <-live:
			if e.Seq <= last {
				continue
			}
			if enc.Encode(e) != nil {
				return
			}
			last = e.Seq
			_ = rc.Flush()
		case <-keepalive.C:
			// A blank line keeps proxies from closing an idle stream.
			if _, err := io.WriteString(w, "\n"); err != nil {
				return
			}
			_ = rc.Flush()
		}
	}
}

// controlAddFaults adds one rule (a JSON object) or several (an array),
// all or none.
func (s *Server) controlAddFaults(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(io.LimitReader(req.Body, 1<<20))
	if err != nil {
		controlError(w, http.StatusBadRequest, "", "read body: %v", err)
		return
	}
	var rules []chaos.Rule
	trimmed := strings.TrimSpace(string(body))
	if strings.HasPrefix(trimmed, "[") {
		err = strictJSON(body, &rules)
	} else {
		var r chaos.Rule
		err = strictJSON(body, &r)
		rules = []chaos.Rule{r}
	}
	if err != nil {
		controlError(w, http.StatusBadRequest, "", "invalid rule: %v", err)
		return
	}
	if err := s.engine.Add(rules...); err != nil {
		var re *chaos.RuleError
		if errors.As(err, &re) {
			controlError(w, http.StatusBadRequest, re.Field, "rule %s: %s", re.Rule, re.Problem)
			return
		}
		controlError(w, http.StatusBadRequest, "", "%v", err)
		return
	}
	table := routes.Table(s.cfg.Faces.AppService.Path, s.cfg.Faces.Arc.Path)
	for _, r := range rules {
		s.log.Info("fault rule added", "rule", r.Name, "action", r.Action.Type)
		// A rule that can never hit is accepted (it may be meant for
		// 404s) but is almost always a typo: say so where it is added.
		for _, w := range r.LintRoutes(table) {
			s.log.Warn("fault rule can never hit a served request", "rule", r.Name, "warning", w)
		}
	}
	writeJSON(w, http.StatusCreated, s.engine.Rules())
}

// controlRemoveFaults removes the rule ?name names, or every rule.
func (s *Server) controlRemoveFaults(w http.ResponseWriter, req *http.Request) {
	name := req.URL.Query().Get("name")
	if name == "" {
		s.engine.Reset()
		w.WriteHeader(http.StatusNoContent)
		return
	}
	if !s.engine.Remove(name) {
		controlError(w, http.StatusNotFound, "name", "no fault rule named %q", name)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) controlThrottle(w http.ResponseWriter, req *http.Request) {
	var l chaos.Limits
	if !decodeBody(w, req, &l) {
		return
	}
	if err := l.Validate(); err != nil {
		controlError(w, http.StatusBadRequest, "", "%v", err)
		return
	}
	s.limiter.Set(l)
	writeJSON(w, http.StatusOK, s.limiter.Limits())
}

// strictJSON decodes b into v, rejecting unknown fields.
func strictJSON(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}

// controlReset restores the identities, token settings, fault rules and
// throttling the server started with, and empties the token cache and
// the journal.
func (s *Server) controlReset(w http.ResponseWriter, _ *http.Request) {
	sys, users := s.cfg.Identities()
	if err := s.store.Replace(sys, users); err != nil {
		controlError(w, http.StatusInternalServerError, "", "restore identities: %v", err)
		return
	}
	s.applyTokenSettings()
	s.minter.Flush()
	s.journal.Reset()
	s.engine.Reset()
	if err := s.engine.Add(s.cfg.Chaos.Faults...); err != nil {
		controlError(w, http.StatusInternalServerError, "", "restore fault rules: %v", err)
		return
	}
	s.limiter.Set(s.cfg.Chaos.Throttle)
	w.WriteHeader(http.StatusNoContent)
}
