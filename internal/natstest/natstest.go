// Package natstest starts a real 3-node NATS JetStream cluster inside a test process, on
// 127.0.0.1 with ports of its own, and stops and restarts its nodes to make the failures the
// relay must survive: one node lost, quorum lost, recovery. It is for tests only; no
// production package imports it (kiosk/layering_test.go guards that), so the NATS server
// stays out of relayd's build.
package natstest

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/tether-kiosk/tether/internal/testwait"
)

// Size is the number of nodes: the smallest cluster that keeps an R3 stream writable with one
// node down and loses quorum with two.
const Size = 3

// Cluster is a running cluster. Its methods end the test on failure; call them from the test's
// goroutine.
type Cluster struct {
	t     testing.TB
	mu    sync.Mutex
	nodes [Size]*node
	tls   *TLSFiles // nil: plain client ports
}

type node struct {
	opts server.Options // kept to restart the node with the same name, ports and store
	srv  *server.Server // nil while stopped
}

// freePorts reserves n distinct loopback ports. The listeners are closed before the servers
// bind, so another process could take one in between; fixed ports are what let a restarted
// node come back where its peers expect it.
func freePorts(t testing.TB, n int) []int {
	t.Helper()
	var ls []net.Listener
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("natstest: reserve a port: %v", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	for _, l := range ls {
		_ = l.Close()
	}
	return ports
}

// Start starts the cluster and waits until it has a JetStream meta leader. It is shut down
// when the test ends.
func Start(t testing.TB) *Cluster { return start(t, nil, freePorts, 15*time.Second) }

// StartTLS is Start with TLS on the nodes' client ports (the routes between them stay plain,
// on loopback): each presents files' server certificate and requires a client certificate
// the CA signed. URL gives tls:// addresses; Connect trusts the CA and presents the client
// certificate.
func StartTLS(t testing.TB, files TLSFiles) *Cluster {
	return start(t, &files, freePorts, 15*time.Second)
}

// start starts a cluster on ports from pick, each node given wait to take connections.
func start(t testing.TB, files *TLSFiles, pick func(testing.TB, int) []int, wait time.Duration) *Cluster {
	t.Helper()
	c := &Cluster{t: t, tls: files}
	base := t.TempDir()
	t.Cleanup(c.Shutdown)
	// The ports are free when freePorts picks them and bound a moment later: another process
	// of the test run may take one in between (a listener of its own on 127.0.0.1:0), and a
	// node that cannot listen never becomes ready (seen once in CI, with several packages
	// starting clusters at once). So the first start tries fresh ports a few times; a
	// restart keeps its node's ports, which its peers know.
	for attempt := 1; ; attempt++ {
		c.configure(pick(t, 2*Size), filepath.Join(base, fmt.Sprint("start", attempt)), files)
		err := c.startAll(wait)
		if err == nil {
			break
		}
		c.Shutdown()
		if attempt == 3 {
			t.Fatalf("natstest: %v (three sets of ports)", err)
		}
	}
	c.WaitMetaLeader()
	return c
}

// startAll starts every node, the first time.
func (c *Cluster) startAll(wait time.Duration) error {
	for i := range Size {
		if err := c.tryStart(i, wait); err != nil {
			return err
		}
	}
	return nil
}

// configure sets the nodes' options: client ports first, then route ports, stores under base.
func (c *Cluster) configure(ports []int, base string, files *TLSFiles) {
	t := c.t
	var routes []*url.URL
	for i := range Size {
		routes = append(routes, &url.URL{Scheme: "nats-route", Host: fmt.Sprintf("127.0.0.1:%d", ports[Size+i])})
	}
	for i := range Size {
		c.nodes[i] = &node{opts: server.Options{
			ServerName: fmt.Sprintf("n%d", i+1),
			Host:       "127.0.0.1",
			Port:       ports[i],
			JetStream:  true,
			StoreDir:   filepath.Join(base, fmt.Sprintf("n%d", i+1)),
			// Small limits: each node reserves nothing it does not use, and a test
			// cluster must not claim the machine's memory or disk.
			JetStreamMaxMemory: 256 << 20,
			JetStreamMaxStore:  4 << 30,
			Cluster: server.ClusterOpts{
				Name: "tether-test",
				Host: "127.0.0.1",
				Port: ports[Size+i],
			},
			Routes: routes,
			NoLog:  true,
			NoSigs: true,
		}}
		if files != nil {
			c.nodes[i].opts.TLS, c.nodes[i].opts.TLSVerify = true, true
			c.nodes[i].opts.TLSConfig = files.serverConfig(t)
			c.nodes[i].opts.TLSTimeout = 5
		}
	}
}

// start starts node i again, on its ports, ending the test if it cannot.
func (c *Cluster) start(i int) {
	c.t.Helper()
	if err := c.tryStart(i, 30*time.Second); err != nil {
		c.t.Fatalf("natstest: %v", err)
	}
}

// tryStart starts node i and waits up to wait for it to take connections.
func (c *Cluster) tryStart(i int, wait time.Duration) error {
	opts := c.nodes[i].opts // a copy: the server writes into the options it is given
	srv, err := server.NewServer(&opts)
	if err != nil {
		return fmt.Errorf("node %d: %w", i, err)
	}
	srv.Start()
	if !srv.ReadyForConnections(wait) {
		srv.Shutdown()
		return fmt.Errorf("node %d not ready for connections within %v (ports %d, %d)", i, wait, opts.Port, opts.Cluster.Port)
	}
	c.mu.Lock()
	c.nodes[i].srv = srv
	c.mu.Unlock()
	return nil
}

// URL is node i's client URL.
func (c *Cluster) URL(i int) string {
	scheme := "nats"
	if c.tls != nil {
		scheme = "tls"
	}
	return fmt.Sprintf("%s://127.0.0.1:%d", scheme, c.nodes[i].opts.Port)
}

// URLs is every node's client URL, comma-separated as nats.Connect takes them.
func (c *Cluster) URLs() string {
	var us []string
	for i := range Size {
		us = append(us, c.URL(i))
	}
	return strings.Join(us, ",")
}

// Connect connects to node i first (then the others, on failover), reconnecting without end
// and quickly, as a gateway would. It is closed when the test ends.
func (c *Cluster) Connect(i int) *nats.Conn {
	c.t.Helper()
	servers := []string{c.URL(i)}
	for j := range Size {
		if j != i {
			servers = append(servers, c.URL(j))
		}
	}
	opts := []nats.Option{nats.DontRandomize(), nats.MaxReconnects(-1), nats.ReconnectWait(50 * time.Millisecond),
		nats.Name(fmt.Sprintf("natstest-%d", i))}
	if c.tls != nil {
		opts = append(opts, nats.RootCAs(c.tls.CA), nats.ClientCert(c.tls.ClientCert, c.tls.ClientKey))
	}
	nc, err := nats.Connect(strings.Join(servers, ","), opts...)
	if err != nil {
		c.t.Fatalf("natstest: connect to node %d: %v", i, err)
	}
	c.t.Cleanup(nc.Close)
	return nc
}

// Stop shuts node i down (its store stays, for Restart).
func (c *Cluster) Stop(i int) {
	c.mu.Lock()
	srv := c.nodes[i].srv
	c.nodes[i].srv = nil
	c.mu.Unlock()
	if srv != nil {
		srv.Shutdown()
		srv.WaitForShutdown()
	}
}

// Restart starts a stopped node i again, with its store, and waits for a meta leader.
func (c *Cluster) Restart(i int) {
	c.t.Helper()
	c.start(i)
	c.WaitMetaLeader()
}

// StopQuorum stops every node but keep: an R3 stream then has no quorum.
func (c *Cluster) StopQuorum(keep int) {
	for i := range Size {
		if i != keep {
			c.Stop(i)
		}
	}
}

// Running reports whether node i is up.
func (c *Cluster) Running(i int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nodes[i].srv != nil
}

// Shutdown stops every node.
func (c *Cluster) Shutdown() {
	for i := range Size {
		c.Stop(i)
	}
}

// WaitMetaLeader polls until a running node is the JetStream meta leader, every running
// node is current with it, and the leader counts every running node as a peer it can place
// streams on. A leader elected before the other nodes' first statistics reach it refuses an R3
// stream ("no suitable peers for placement", API error 10005), which on a loaded machine can
// last long enough to fail a test that creates its stream at once.
func (c *Cluster) WaitMetaLeader() {
	c.t.Helper()
	testwait.UntilSaw(c.t, "a JetStream meta leader with every running node as a peer", func() (bool, string) {
		c.mu.Lock()
		defer c.mu.Unlock()
		var leader *server.Server
		running := 0
		for _, n := range c.nodes {
			if n.srv == nil {
				continue
			}
			running++
			if n.srv.JetStreamIsLeader() {
				leader = n.srv
			}
			if !n.srv.JetStreamIsCurrent() {
				return false, n.opts.ServerName + " not current"
			}
		}
		if leader == nil || running <= Size/2 {
			return false, "no leader"
		}
		peers := leader.JetStreamClusterPeers()
		return len(peers) >= running, fmt.Sprintf("leader %s places on %v of %d running", leader.Name(), peers, running)
	})
}

// StreamLeader is the index of the node that leads stream name now, as seen through nc.
func (c *Cluster) StreamLeader(nc *nats.Conn, name string) int {
	c.t.Helper()
	js, err := jetstream.New(nc)
	if err != nil {
		c.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := js.Stream(ctx, name)
	if err != nil {
		c.t.Fatalf("natstest: stream %s: %v", name, err)
	}
	leader := st.CachedInfo().Cluster.Leader
	for i, n := range c.nodes {
		if n.opts.ServerName == leader {
			return i
		}
	}
	c.t.Fatalf("natstest: stream %s is led by %q, not a node of this cluster", name, leader)
	return -1
}

// WaitStream polls until stream name has a leader and all its replicas are current, seen
// through nc.
func (c *Cluster) WaitStream(nc *nats.Conn, name string) {
	c.t.Helper()
	js, err := jetstream.New(nc)
	if err != nil {
		c.t.Fatal(err)
	}
	testwait.UntilSaw(c.t, "stream "+name+" ready", func() (bool, string) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		s, err := js.Stream(ctx, name)
		if err != nil {
			return false, err.Error()
		}
		info := s.CachedInfo()
		ci := info.Cluster
		if ci == nil || ci.Leader == "" {
			return false, "no leader"
		}
		if len(ci.Replicas)+1 < info.Config.Replicas {
			return false, fmt.Sprintf("%d replicas", len(ci.Replicas)+1)
		}
		for _, r := range ci.Replicas {
			if !r.Current || r.Offline {
				return false, "replica " + r.Name + " not current"
			}
		}
		return routed(nc, info.Config.Subjects)
	})
}

// routed reports whether a publish from nc to the stream's subjects reaches the stream. A
// stream whose leader is elected may not yet have its interest carried over the routes to the
// server nc talks to; a publish then gets "no responders". The probe names a stream that is
// not this one (Nats-Expected-Stream), so the leader answers with an error and stores nothing.
func routed(nc *nats.Conn, subjects []string) (bool, string) {
	if len(subjects) == 0 {
		return true, ""
	}
	subj := strings.ReplaceAll(subjects[0], ">", "probe")
	subj = strings.ReplaceAll(subj, "*", "probe")
	m := nats.NewMsg(subj)
	m.Header.Set(jetstream.ExpectedStreamHeader, "natstest-probe-no-such-stream")
	resp, err := nc.RequestMsg(m, 2*time.Second)
	if err != nil {
		return false, "publish to " + subj + ": " + err.Error()
	}
	if len(resp.Data) == 0 {
		return false, "empty answer to the probe"
	}
	return true, ""
}
