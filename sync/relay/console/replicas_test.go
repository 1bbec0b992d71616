package console_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tether-kiosk/tether/internal/natstest"
	"github.com/tether-kiosk/tether/sync/relay"
	jskv "github.com/tether-kiosk/tether/sync/relay/kv/jetstream"
)

// On JetStream the terminals page, only looked at, reads its terminals from replicas (a
// StaleView, as do the device reports); the page a revocation leads back to reads them fresh,
// so the terminal just revoked shows revoked. The store counts its stale views.
func TestTerminalsPageReadsFreshAfterAnAction(t *testing.T) {
	c := natstest.Start(t)
	nc := c.Connect(0)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	o := jskv.Options{Stream: "console", Prefix: "console", CacheBucketMarkers: true}
	st, err := natstest.Placed(ctx, func() (*jskv.Store, error) { return jskv.Open(ctx, nc, o) })
	if err != nil {
		t.Fatal(err)
	}
	c.WaitStream(nc, o.Stream)
	e := newEnvWith(t, false, func(cfg *relay.Config) { cfg.Store = st })
	tm := e.kiosk("")
	b := e.browser().mustLogin("tess")
	staleViews := func(path string) int64 {
		t.Helper()
		before := st.Stats().StaleViews
		if resp := b.get(path); resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %d", path, resp.StatusCode)
		}
		if !strings.Contains(b.last, tm.en.TerminalID) {
			t.Fatalf("GET %s does not list the kiosk", path)
		}
		return st.Stats().StaleViews - before
	}
	if n := staleViews("/console/terminals"); n != 2 {
		t.Errorf("the terminals page, looked at, made %d stale views; want 2 (terminals, device reports)", n)
	}
	resp := b.postForm("/console/terminals", "/console/terminals/"+tm.en.TerminalID+"/revoke", nil)
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("revoke: %d, want a redirect back", resp.StatusCode)
	}
	back := resp.Header.Get("Location")
	if n := staleViews(back); n != 1 {
		t.Errorf("the page after the revocation (%s) made %d stale views; want 1 (device reports; terminals fresh)", back, n)
	}
	if !strings.Contains(b.last, "revoked") {
		t.Errorf("the page after the revocation does not show it revoked:\n%s", b.last)
	}
}
