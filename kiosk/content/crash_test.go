package content

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tether-kiosk/tether/internal/testseed"
)

// The crash test runs this test binary again as a child that receives an object chunk by
// chunk into a content store, kills it with SIGKILL at a random moment, and checks the file it
// left: it opens, every chunk the child was told was stored is there and matches its digest,
// and the next child asks only for the rest. The object arrives whole in the end, byte for
// byte, however many times its receiver was killed. (A kill leaves the page cache to the
// kernel: this tests that each commit is all or nothing, not the fsync a power cut needs.)

const crashEnv = "TETHER_CONTENT_CRASH_CHILD"

// crashObject is the object the children receive: 48 chunks, the last short.
func crashObject() []byte { return randomBytes(47*ChunkSize+777, 77) }

func TestCrashWhileReceiving(t *testing.T) {
	maxKills := 200
	if testing.Short() {
		maxKills = 12
	}
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(testseed.Seed(t), 0))
	data := crashObject()
	m, err := Build(bytes.NewReader(data), nil)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, File)
	stored := map[int]bool{}
	kills, midway := 0, 0
	for kills < maxKills {
		told, complete, err := runContentChild(path, time.Duration(rng.IntN(15))*time.Millisecond)
		if err != nil {
			t.Fatalf("kill %d: %v", kills, err)
		}
		kills++
		for _, i := range told {
			stored[i] = true
		}
		s, err := Open(path, Options{})
		if err != nil {
			t.Fatalf("after kill %d the store does not open: %v", kills, err)
		}
		missing, err := s.Missing(m.Object, MaxChunks)
		if err != nil && !errors.Is(err, ErrUnknownObject) {
			t.Fatalf("after kill %d: %v", kills, err)
		}
		for _, i := range missing {
			if stored[i] {
				t.Fatalf("after kill %d: chunk %d was reported stored and is missing", kills, i)
			}
		}
		for i := range m.Chunks {
			if slicesContains(missing, i) || errors.Is(err, ErrUnknownObject) {
				continue
			}
			c, cerr := s.Chunk(m.Object, i, nil)
			if cerr != nil || Sum(c) != m.Chunks[i] {
				t.Fatalf("after kill %d: chunk %d held but unreadable or wrong: %v", kills, i, cerr)
			}
		}
		st, _ := s.State(m.Object)
		s.Close()
		if st == Whole {
			break
		}
		if !complete && len(missing) < len(m.Chunks) {
			midway++
		}
	}
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// What the last child did not receive (a short run stops killing early) is received here.
	if err := s.Begin(m.Ref(), m.Encode()); err != nil {
		t.Fatal(err)
	}
	missing, err := s.Missing(m.Object, MaxChunks)
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range missing {
		if _, err := s.PutChunk(m.Object, i, data[i*ChunkSize:i*ChunkSize+ChunkLen(m.Size, i)]); err != nil {
			t.Fatal(err)
		}
	}
	if st, _ := s.State(m.Object); st != Whole {
		t.Fatalf("not whole after %d kills and the rest received", kills)
	}
	r, err := s.Open(m.Object)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	if _, err := io.Copy(h, r); err != nil || Hash(h.Sum(nil)) != m.Object {
		t.Fatalf("object read back after the kills differs: %v", err)
	}
	t.Logf("%d kills, %d of them with the object in part", kills, midway)
	if midway < 3 {
		t.Fatalf("only %d kills landed with the object in part: too little to test", midway)
	}
}

func slicesContains(s []int, v int) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// runContentChild starts a child receiving into path, kills it after it said it was ready
// and after, and returns the chunks it reported stored and whether it reported completion.
func runContentChild(path string, after time.Duration) (told []int, complete bool, err error) {
	cmd := exec.Command(os.Args[0], "-test.run=^TestContentCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashEnv+"="+path)
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, false, err
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, false, err
	}
	ready := make(chan struct{})
	done := make(chan struct{})
	var other strings.Builder
	go func() {
		defer close(done)
		sc := bufio.NewScanner(out)
		once := false
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "ready" && !once:
				once = true
				close(ready)
			case line == "complete":
				complete = true
			case strings.HasPrefix(line, "stored "):
				i, _ := strconv.Atoi(strings.TrimPrefix(line, "stored "))
				told = append(told, i)
			default:
				other.WriteString(line + "\n")
			}
		}
		if !once {
			close(ready)
		}
	}()
	select {
	case <-ready:
	case <-time.After(30 * time.Second):
	}
	time.Sleep(after)
	cmd.Process.Signal(syscall.SIGKILL)
	<-done
	werr := cmd.Wait()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() {
		return nil, false, fmt.Errorf("child was not killed (%v); it said: %s", werr, other.String())
	}
	return told, complete, nil
}

// TestContentCrashChild is the child: it receives what is missing, a few chunks per
// transaction, saying which chunks each committed transaction stored, until it is killed.
func TestContentCrashChild(t *testing.T) {
	path := os.Getenv(crashEnv)
	if path == "" {
		t.Skip("run by TestCrashWhileReceiving")
	}
	data := crashObject()
	m, _ := Build(bytes.NewReader(data), nil)
	s, err := Open(path, Options{})
	if err != nil {
		fmt.Println("open:", err)
		time.Sleep(time.Hour)
	}
	if err := s.Begin(m.Ref(), m.Encode()); err != nil {
		fmt.Println("begin:", err)
		time.Sleep(time.Hour)
	}
	fmt.Println("ready")
	for n := 1; ; n = n%3 + 1 {
		missing, err := s.Missing(m.Object, n)
		if err != nil {
			fmt.Println("missing:", err)
			time.Sleep(time.Hour)
		}
		if len(missing) == 0 {
			fmt.Println("complete")
			time.Sleep(time.Hour) // wait for the kill
		}
		var batch []Received
		for _, i := range missing {
			batch = append(batch, Received{Index: i, Data: data[i*ChunkSize : i*ChunkSize+ChunkLen(m.Size, i)]})
		}
		if _, refused, err := s.PutChunks(m.Object, batch); err != nil || len(refused) > 0 {
			fmt.Println("put:", err, refused)
			time.Sleep(time.Hour)
		}
		for _, i := range missing {
			fmt.Println("stored", i)
		}
	}
}
