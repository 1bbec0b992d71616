package kv_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/tether-kiosk/tether/sync/relay/kv"
)

// Retryable is what the relay's commit loop and the terminals' retry advice follow: the
// passing failures of a replicated store are retried, a transaction's own errors are not,
// however deeply they are wrapped.
func TestRetryableSortsTheErrorKinds(t *testing.T) {
	wrap := func(err error) error { return fmt.Errorf("store batch: %w", fmt.Errorf("jskv: commit: %w", err)) }
	for _, err := range []error{kv.ErrConflict, kv.ErrNoQuorum, kv.ErrTimeout} {
		if !kv.Retryable(err) || !kv.Retryable(wrap(err)) {
			t.Errorf("%v: not retryable", err)
		}
	}
	for _, err := range []error{nil, kv.ErrBucketNotFound, kv.ErrBucketExists, kv.ErrKeyRequired, kv.ErrNameRequired,
		kv.ErrTxNotWritable, kv.ErrTxTooLarge, kv.ErrBadTopic, errors.New("kv: conflict with a concurrent transaction")} {
		if kv.Retryable(err) || kv.Retryable(wrap(err)) {
			t.Errorf("%v: retryable", err)
		}
	}
}

func TestCheckTopic(t *testing.T) {
	for _, ok := range []string{"conn-owners", "a", "A_9", strings.Repeat("x", 64)} {
		if err := kv.CheckTopic(ok); err != nil {
			t.Errorf("CheckTopic(%q) = %v", ok, err)
		}
	}
	// A dot or a wildcard would reach other NATS subjects than the topic's own.
	for _, bad := range []string{"", "a.b", "*", ">", "a b", "ä", strings.Repeat("x", 65), "a\x00"} {
		if err := kv.CheckTopic(bad); !errors.Is(err, kv.ErrBadTopic) {
			t.Errorf("CheckTopic(%q) = %v, want ErrBadTopic", bad, err)
		}
	}
}

// FuzzCheckTopic: every topic accepted is one NATS subject token of at most 64 bytes.
func FuzzCheckTopic(f *testing.F) {
	for _, s := range []string{"conn-owners", "a.b", "*", ">", "", "x y"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, topic string) {
		if kv.CheckTopic(topic) != nil {
			return
		}
		if len(topic) == 0 || len(topic) > 64 || strings.ContainsAny(topic, ".*> \t\r\n") {
			t.Fatalf("accepted %q", topic)
		}
	})
}
