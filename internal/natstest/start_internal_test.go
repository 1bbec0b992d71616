package natstest

import (
	"net"
	"testing"
	"time"
)

// A port taken between freePorts and the node's listen (another process's listener) fails
// that start; the cluster starts on fresh ports instead of ending the test.
func TestStartTakesFreshPortsWhenOneIsTaken(t *testing.T) {
	held, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	picks := 0
	pick := func(tb testing.TB, n int) []int {
		picks++
		ports := freePorts(tb, n)
		if picks == 1 {
			ports[1] = held.Addr().(*net.TCPAddr).Port // node 2's client port, in use
		}
		return ports
	}
	c := start(t, nil, pick, 2*time.Second)
	if picks != 2 {
		t.Fatalf("the cluster started after %d sets of ports, want 2", picks)
	}
	nc := c.Connect(1)
	if !nc.IsConnected() {
		t.Fatal("not connected to node 2 on its fresh port")
	}
}
