package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// clusterSize is the nodes of a started cluster: the smallest that keeps an R3 stream writable
// with one node down, as docs/SCALE.md asks of a deployment.
const clusterSize = 3

// natsCluster is a 3-node NATS JetStream cluster the tool started from a nats-server binary
// (the Makefile's bench target builds one from the module's own nats-server dependency, so
// no program of the module links the server; kiosk/layering_test.go keeps it that way).
type natsCluster struct {
	dir   string
	urls  []string // client URLs, one per node
	nodes []*exec.Cmd
	exits []chan error
}

// freePorts reserves n distinct loopback ports and releases them for the processes to bind.
// Another process could take one in between; the start then fails and says which.
func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("reserve a loopback port: %w", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// startCluster starts three nats-server processes from bin on 127.0.0.1, each with its own
// JetStream store under tmp, routed to each other, and waits until JetStream answers.
func startCluster(ctx context.Context, bin, tmp string, logf func(string, ...any)) (*natsCluster, error) {
	dir, err := os.MkdirTemp(tmp, "tetherload-nats-")
	if err != nil {
		return nil, fmt.Errorf("start NATS cluster: %w", err)
	}
	c := &natsCluster{dir: dir}
	ports, err := freePorts(2 * clusterSize)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	var routes []string
	for i := range clusterSize {
		routes = append(routes, fmt.Sprintf("nats-route://127.0.0.1:%d", ports[clusterSize+i]))
	}
	for i := range clusterSize {
		name := fmt.Sprintf("n%d", i+1)
		conf := fmt.Sprintf(`server_name: %s
listen: 127.0.0.1:%d
jetstream {
  store_dir: %q
  max_memory_store: 256MB
  max_file_store: 16GB
}
cluster {
  name: tetherload
  listen: 127.0.0.1:%d
  routes: [%s]
}
`, name, ports[i], filepath.Join(dir, name), ports[clusterSize+i], strings.Join(routes, ", "))
		path := filepath.Join(dir, name+".conf")
		if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
			c.stop(false)
			return nil, fmt.Errorf("start NATS cluster: %w", err)
		}
		logFile, err := os.Create(filepath.Join(dir, name+".log"))
		if err != nil {
			c.stop(false)
			return nil, fmt.Errorf("start NATS cluster: %w", err)
		}
		cmd := exec.Command(bin, "-c", path)
		cmd.Stdout, cmd.Stderr = logFile, logFile
		if err := cmd.Start(); err != nil {
			logFile.Close()
			c.stop(false)
			return nil, fmt.Errorf("start nats-server %s: %w", name, err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait(); logFile.Close() }()
		c.nodes, c.exits = append(c.nodes, cmd), append(c.exits, exited)
		c.urls = append(c.urls, fmt.Sprintf("nats://127.0.0.1:%d", ports[i]))
	}
	if err := c.waitJetStream(ctx, 60*time.Second); err != nil {
		c.stop(true)
		return nil, err
	}
	logf("NATS cluster of %d nodes up at %s (directory %s)", clusterSize, c.URLs(), dir)
	return c, nil
}

// URLs is the cluster's client URLs, comma-separated as relayd -store and nats.Connect take them.
func (c *natsCluster) URLs() string { return strings.Join(c.urls, ",") }

// waitJetStream polls until an R3 stream can be made: a meta leader that knows its peers.
func (c *natsCluster) waitJetStream(ctx context.Context, d time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var last error
	for ctx.Err() == nil {
		for i, ex := range c.exits {
			select {
			case err := <-ex:
				ex <- err
				return fmt.Errorf("nats-server n%d exited (%v); its log: %s", i+1, err, tail(filepath.Join(c.dir, fmt.Sprintf("n%d.log", i+1))))
			default:
			}
		}
		last = probeR3(ctx, c.URLs())
		if last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
		case <-time.After(250 * time.Millisecond):
		}
	}
	return fmt.Errorf("NATS cluster not ready for an R3 stream within %v: %v", d, last)
}

// probeR3 makes and deletes a small R3 stream.
func probeR3(ctx context.Context, urls string) error {
	nc, err := nats.Connect(urls, nats.Timeout(2*time.Second))
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := js.CreateOrUpdateStream(pctx, jetstream.StreamConfig{Name: "TETHERLOAD_PROBE", Subjects: []string{"tetherload.probe"},
		Replicas: 3, Storage: jetstream.MemoryStorage}); err != nil {
		return err
	}
	return js.DeleteStream(pctx, "TETHERLOAD_PROBE")
}

// pids are the nodes' process ids.
func (c *natsCluster) pids() []int {
	var pids []int
	for _, cmd := range c.nodes {
		pids = append(pids, cmd.Process.Pid)
	}
	return pids
}

// stop ends every node with SIGTERM (SIGKILL after 15 s) and removes the directory unless keep.
func (c *natsCluster) stop(keep bool) error {
	var errs []error
	for i, cmd := range c.nodes {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-c.exits[i]:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-c.exits[i]
			errs = append(errs, fmt.Errorf("nats-server n%d did not exit within 15s of SIGTERM; killed", i+1))
		}
	}
	if !keep {
		os.RemoveAll(c.dir)
	}
	return errors.Join(errs...)
}
