package client_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/idharness/idharness/fakeimds"
	"github.com/idharness/idharness/fakeimds/api"
	"github.com/idharness/idharness/fakeimds/client"
	"github.com/idharness/idharness/fakeimds/config"
	"github.com/idharness/idharness/fakeimds/fakeimdstest"
	"github.com/idharness/idharness/fakeimds/journal"
)

const (
	newClient = "55555555-5555-4555-8555-555555555555"
	newObject = "66666666-6666-4666-8666-666666666666"
)

// start runs a fakeimds server on loopback for the test and returns a
// control client and the IMDS address. The host has only its system
// identity, so that tests can count identities after attaching one.
func start(t *testing.T) (*client.Client, string) {
	t.Helper()
	_, a := fakeimdstest.Start(t, func(c *config.Config) { c.UserAssigned = nil })
	c, err := client.New("http://" + a.Control)
	if err != nil {
		t.Fatal(err)
	}
	wctx, wcancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer wcancel()
	if err := c.WaitReady(wctx); err != nil {
		t.Fatal(err)
	}
	return c, a.IMDS
}

// token asks the IMDS face for a token and returns the status and body.
func token(t *testing.T, imds, query string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, "http://"+imds+fakeimds.IMDSTokenPath+"?api-version=2018-02-01&resource=https://vault.azure.net"+query, nil)
	req.Header.Set("Metadata", "true")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestAttachDetach(t *testing.T) {
	c, imds := start(t)
	ctx := context.Background()
	if code, body := token(t, imds, "&client_id="+newClient); code != 400 || !strings.Contains(body, "Identity not found") {
		t.Fatalf("before attach: %d %s", code, body)
	}
	id, err := c.Attach(ctx, config.Identity{Name: "late", ClientID: newClient, ObjectID: newObject})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(id.ResourceID, "/userAssignedIdentities/late") {
		t.Errorf("derived resource ID %q", id.ResourceID)
	}
	if code, body := token(t, imds, "&client_id="+newClient); code != 200 {
		t.Fatalf("after attach: %d %s", code, body)
	}
	ids, err := c.Identities(ctx)
	if err != nil || len(ids) != 2 || !ids[0].System || ids[1].ClientID != newClient {
		t.Fatalf("Identities: %+v %v", ids, err)
	}
	if _, err := c.Detach(ctx, client.Selector{ObjectID: newObject}); err != nil {
		t.Fatal(err)
	}
	if code, _ := token(t, imds, "&client_id="+newClient); code != 400 {
		t.Fatalf("after detach: %d", code)
	}
	var apiErr *client.APIError
	if _, err := c.Detach(ctx, client.Selector{ClientID: newClient}); !errors.As(err, &apiErr) || apiErr.Status != 404 {
		t.Fatalf("second detach: %v", err)
	}
}

func TestAttachValidation(t *testing.T) {
	c, _ := start(t)
	ctx := context.Background()
	for _, tc := range []struct {
		name  string
		in    config.Identity
		field string
	}{
		{"bad client id", config.Identity{Name: "x", ClientID: "nope", ObjectID: newObject}, "clientId"},
		{"no name", config.Identity{ClientID: newClient, ObjectID: newObject}, "name"},
		{"bad resource id", config.Identity{Name: "x", ClientID: newClient, ObjectID: newObject, ResourceID: "rg/x"}, "resourceId"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.Attach(ctx, tc.in)
			var apiErr *client.APIError
			if !errors.As(err, &apiErr) || apiErr.Status != 400 || apiErr.Field != tc.field {
				t.Fatalf("Attach: %v (want 400 on field %s)", err, tc.field)
			}
		})
	}
	if _, err := c.Attach(ctx, config.Identity{Name: "a", ClientID: newClient, ObjectID: newObject}); err != nil {
		t.Fatal(err)
	}
	var apiErr *client.APIError
	if _, err := c.Attach(ctx, config.Identity{Name: "b", ClientID: newClient, ObjectID: "77777777-7777-4777-8777-777777777777"}); !errors.As(err, &apiErr) || apiErr.Status != 409 {
		t.Fatalf("duplicate attach: %v", err)
	}
}

func TestTokenSettingsAndLifetime(t *testing.T) {
	c, imds := start(t)
	ctx := context.Background()
	off := false
	got, err := c.SetTokens(ctx, api.TokenSettings{Lifetime: &config.Duration{Duration: 90 * time.Second}, Cache: &off})
	if err != nil || got.Lifetime.Duration != 90*time.Second || *got.Cache {
		t.Fatalf("SetTokens: %+v %v", got, err)
	}
	if _, body := token(t, imds, ""); !strings.Contains(body, `"expires_in":"90"`) {
		t.Errorf("lifetime not applied: %s", body)
	}
	if _, err := c.SetIdentityLifetime(ctx, client.Selector{ClientID: fakeimdstest.SystemClientID}, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if _, body := token(t, imds, ""); !strings.Contains(body, `"expires_in":"10"`) {
		t.Errorf("identity lifetime not applied: %s", body)
	}
	var apiErr *client.APIError
	if _, err := c.SetTokens(ctx, api.TokenSettings{Lifetime: &config.Duration{}}); !errors.As(err, &apiErr) || apiErr.Field != "lifetime" {
		t.Fatalf("zero lifetime accepted: %v", err)
	}
	if err := c.Reset(ctx); err != nil {
		t.Fatal(err)
	}
	if _, body := token(t, imds, ""); !strings.Contains(body, `"expires_in":"86400"`) {
		t.Errorf("reset did not restore the 24h lifetime: %s", body)
	}
}

func TestSystemIdentity(t *testing.T) {
	c, imds := start(t)
	ctx := context.Background()
	if err := c.RemoveSystem(ctx); err != nil {
		t.Fatal(err)
	}
	if code, body := token(t, imds, ""); code != 400 || !strings.Contains(body, "Identity not found") {
		t.Fatalf("no identity: %d %s", code, body)
	}
	if _, err := c.SetSystem(ctx, config.Identity{Name: "sys2", ClientID: newClient, ObjectID: newObject}); err != nil {
		t.Fatal(err)
	}
	if code, body := token(t, imds, ""); code != 200 || !strings.Contains(body, newClient) {
		t.Fatalf("new system identity: %d %s", code, body)
	}
}

func TestJournalReadAndStream(t *testing.T) {
	c, imds := start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	token(t, imds, "")
	token(t, imds, "&client_id=nope")
	entries, err := c.Journal(ctx, 0)
	if err != nil || len(entries) != 2 || entries[0].Status != 200 || entries[1].Status != 400 {
		t.Fatalf("Journal: %+v %v", entries, err)
	}
	later, err := c.Journal(ctx, entries[0].Seq)
	if err != nil || len(later) != 1 || later[0].Seq != entries[1].Seq {
		t.Fatalf("Journal since: %+v %v", later, err)
	}
	got := make(chan journal.Entry, 10)
	streamDone := make(chan error, 1)
	go func() {
		streamDone <- c.StreamJournal(ctx, entries[0].Seq, func(e journal.Entry) error {
			got <- e
			if e.Seq >= entries[1].Seq+1 {
				return client.ErrStop
			}
			return nil
		})
	}()
	if e := <-got; e.Seq != entries[1].Seq {
		t.Fatalf("backlog entry %d, want %d", e.Seq, entries[1].Seq)
	}
	token(t, imds, "")
	select {
	case e := <-got:
		if e.Seq != entries[1].Seq+1 || e.Status != 200 {
			t.Fatalf("live entry %+v", e)
		}
	case <-ctx.Done():
		t.Fatal("no live entry streamed")
	}
	if err := <-streamDone; err != nil {
		t.Fatalf("StreamJournal: %v", err)
	}
	if err := c.ResetJournal(ctx); err != nil {
		t.Fatal(err)
	}
	if e, _ := c.Journal(ctx, 0); len(e) != 0 {
		t.Fatalf("journal not empty after reset: %d", len(e))
	}
}

func TestNewRejectsBadAddress(t *testing.T) {
	for _, a := range []string{"", "127.0.0.1:8079", "ftp://x", "http://"} {
		if _, err := client.New(a); err == nil {
			t.Errorf("New(%q) accepted", a)
		}
	}
}

// TestJournalFrom: the server keeps only the entries from the addresses
// asked for (a spec's own pods), all of them when none is given.
func TestJournalFrom(t *testing.T) {
	c, imds := start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// Two callers: 127.0.0.1 and, bound as the source, 127.0.0.2 (the
	// whole of 127/8 is loopback on Linux).
	token(t, imds, "")
	from2 := &http.Client{Transport: &http.Transport{DialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}}).DialContext}}
	req, _ := http.NewRequest(http.MethodGet, "http://"+imds+fakeimds.IMDSTokenPath+"?api-version=2018-02-01&resource=https://vault.azure.net", nil)
	req.Header.Set("Metadata", "true")
	resp, err := from2.Do(req)
	if err != nil {
		t.Skipf("cannot send from 127.0.0.2 here: %v", err)
	}
	resp.Body.Close()
	token(t, imds, "&client_id=nope")
	for _, tc := range []struct {
		hosts []string
		want  []string // remote hosts, in order
	}{
		{nil, []string{"127.0.0.1", "127.0.0.2", "127.0.0.1"}},
		{[]string{"127.0.0.2"}, []string{"127.0.0.2"}},
		{[]string{"127.0.0.1"}, []string{"127.0.0.1", "127.0.0.1"}},
		{[]string{"127.0.0.2", "127.0.0.1"}, []string{"127.0.0.1", "127.0.0.2", "127.0.0.1"}},
		{[]string{"10.9.9.9"}, nil},
	} {
		entries, err := c.JournalFrom(ctx, 0, tc.hosts...)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, e := range entries {
			h, _, _ := net.SplitHostPort(e.Remote)
			got = append(got, h)
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("JournalFrom(%v) = %v, want %v", tc.hosts, got, tc.want)
		}
	}
	// since still applies.
	all, _ := c.Journal(ctx, 0)
	if later, err := c.JournalFrom(ctx, all[0].Seq, "127.0.0.1"); err != nil || len(later) != 1 || later[0].Seq != all[2].Seq {
		t.Errorf("JournalFrom(since %d, 127.0.0.1) = %+v, %v; want the third entry", all[0].Seq, later, err)
	}
}
