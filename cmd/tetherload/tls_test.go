package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/tether-kiosk/tether/internal/natstest"
)

// Against a cluster that speaks only TLS and asks its clients for certificates, as a state's
// does, the stream figures and the jetstream baseline connect with the flags the gateways get
// (-nats-ca, -nats-cert, -nats-key), and without them fail saying so.
func TestTheClustersFiguresOverTLSWithClientCertificates(t *testing.T) {
	files := natstest.NewTLSFiles(t)
	c := natstest.StartTLS(t, files)
	o, err := parseFlags([]string{"-spawn", "relayd", "-store", c.URLs(), "-baseline", "jetstream",
		"-nats-ca", files.CA, "-nats-cert", files.ClientCert, "-nats-key", files.ClientKey}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(o.nats.Args(), " "); got != "-nats-ca "+files.CA+" -nats-cert "+files.ClientCert+" -nats-key "+files.ClientKey {
		t.Errorf("a spawned gateway is given %q", got)
	}
	opts, err := o.nats.Options()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	if _, err := sampleStreams(ctx, c.URLs(), nil); err == nil {
		t.Error("the streams were read without the client certificate")
	}
	env := BaselineEnv{NATS: c.URLs(), Conns: 1, MsgBytes: 128}
	if _, err := RunBaseline(ctx, BaselineJetStream, t.TempDir(), 2, 200*time.Millisecond, env); err == nil {
		t.Error("the baseline ran without the client certificate")
	}

	env.NATSOptions = opts
	b, err := RunBaseline(ctx, BaselineJetStream, t.TempDir(), 2, 200*time.Millisecond, env)
	if err != nil || b.Ops == 0 {
		t.Fatalf("the baseline with the flags: %d ops, %v", b.Ops, err)
	}
	if _, err := sampleStreams(ctx, c.URLs(), opts); err != nil {
		t.Fatalf("the streams with the flags: %v", err)
	}
}
