package jskv_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/tether-kiosk/tether/internal/natstest"
	"github.com/tether-kiosk/tether/internal/testwait"
	"github.com/tether-kiosk/tether/sync/relay/kv"
)

// Notify reaches a subscriber of the same stream's topic through another node, not one of
// another stream's same-named topic, and stores nothing in the stream.
func TestNotifyAcrossNodes(t *testing.T) {
	c := natstest.Start(t)
	nc0, nc1 := c.Connect(0), c.Connect(1)
	a0, a1 := openOn(t, c, nc0, "alpha"), openOn(t, c, nc1, "alpha")
	b0 := openOn(t, c, nc0, "beta")
	got := make(chan string, 64)
	for _, sub := range []struct {
		s interface {
			Subscribe(string, func([]byte)) (func(), error)
		}
		tag string
	}{{a0, "alpha: "}, {b0, "beta: "}} {
		unsub, err := sub.s.Subscribe("claims", func(m []byte) { got <- sub.tag + string(m) })
		if err != nil {
			t.Fatal(err)
		}
		defer unsub()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	js, err := jetstream.New(nc1)
	if err != nil {
		t.Fatal(err)
	}
	msgs := func() uint64 {
		st, err := js.Stream(ctx, "alpha")
		if err != nil {
			t.Fatal(err)
		}
		info, err := st.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return info.State.Msgs
	}
	before := msgs()
	// Interest crosses the cluster's routes a moment after Subscribe: send until heard.
	heard := ""
	testwait.Until(t, "a notification through another node", func() bool {
		if err := a1.Notify("claims", []byte("t1")); err != nil {
			t.Fatal(err)
		}
		select {
		case heard = <-got:
			return true
		default:
			return false
		}
	})
	if heard != "alpha: t1" {
		t.Fatalf("heard %q, want %q (a subscriber of another stream must not hear it)", heard, "alpha: t1")
	}
	if after := msgs(); after != before {
		t.Errorf("the stream holds %d messages after notifying, %d before: a notification was stored", after, before)
	}
	for _, bad := range []string{"", "a.b", "a*", ">", "a b", string(make([]byte, 65))} {
		if err := a1.Notify(bad, nil); !errors.Is(err, kv.ErrBadTopic) {
			t.Errorf("Notify(%q): %v, want kv.ErrBadTopic", bad, err)
		}
		if _, err := a1.Subscribe(bad, func([]byte) {}); !errors.Is(err, kv.ErrBadTopic) {
			t.Errorf("Subscribe(%q): %v, want kv.ErrBadTopic", bad, err)
		}
	}
}
