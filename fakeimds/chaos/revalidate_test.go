package chaos

import (
	"sync"
	"testing"
)

// TestRevalidateWhileServing: the server keeps the rules it was configured
// with, and validating that configuration again (the control API does, to
// check an identity it is given) revalidates the very rules the engine
// holds. That must not write anything a request being matched or edited
// reads; run with -race.
func TestRevalidateWhileServing(t *testing.T) {
	rules := []Rule{
		mustRule(t, `{"name":"src","match":{"sources":["10.0.0.0/8"]},"action":{"type":"set-field","field":"resource","template":"{{.Resource}}/"}}`),
		mustRule(t, `{"name":"num","action":{"type":"set-field","field":"expires_on","json":1}}`),
	}
	e := NewEngine(1, nil)
	if err := e.Add(rules...); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		for range 200 {
			for i := range rules {
				if err := rules[i].Validate(); err != nil {
					t.Error(err)
					return
				}
			}
		}
	}()
	go func() {
		defer wg.Done()
		for range 200 {
			fx := e.Evaluate(req("imds", "10.0.0.1"))
			if fx == nil || len(fx.BodyEdits) != 2 {
				t.Errorf("effects %+v", fx)
				return
			}
			for _, edit := range fx.BodyEdits {
				edit([]byte(`{"resource":"r","expires_on":"2"}`))
			}
		}
	}()
	wg.Wait()
}
