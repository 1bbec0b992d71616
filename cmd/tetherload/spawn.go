package main

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// spawned is a relayd the tool started on a fresh data directory.
type spawned struct {
	cmd     *exec.Cmd
	dir     string // temporary: data dir, token file, relayd's log
	base    string
	token   string
	logPath string
	debug   string // the -debug-listen base URL, when given
	exited  chan error
}

// relaydTokenEnv is how the token reaches relayd: the environment variable works with every
// relayd version (the -admin-token flag is being replaced by -admin-token-file).
const relaydTokenEnv = "RELAYD_ADMIN_TOKEN"

// spawnRelay starts relayd on listen (127.0.0.1:0 for an ephemeral port) with a fresh data
// directory under tmp and the admin token (one is made when empty), and waits for its
// "serving" log line to learn the address.
func spawnRelay(path, tmp, listen, token string, extra []string) (*spawned, error) {
	dir, err := os.MkdirTemp(tmp, "tetherload-relay-")
	if err != nil {
		return nil, fmt.Errorf("spawn relayd: %w", err)
	}
	s := &spawned{dir: dir, logPath: filepath.Join(dir, "relayd.log"), exited: make(chan error, 1)}
	fail := func(err error) (*spawned, error) {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("spawn relayd: %w", err)
	}
	s.token = token
	if s.token == "" {
		var tok [32]byte
		if _, err := rand.Read(tok[:]); err != nil {
			return fail(err)
		}
		s.token = hex.EncodeToString(tok[:])
	}
	// Kept beside the data for a person who wants to poke the relay while it runs.
	if err := os.WriteFile(filepath.Join(dir, "admin-token"), []byte(s.token+"\n"), 0o600); err != nil {
		return fail(err)
	}
	logf, err := os.OpenFile(s.logPath, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fail(err)
	}
	args := append([]string{"-data", filepath.Join(dir, "data"), "-listen", listen}, extra...)
	cmd := exec.Command(path, args...)
	cmd.Env = append(os.Environ(), relaydTokenEnv+"="+s.token)
	cmd.Stdout = logf
	stderr, err := cmd.StderrPipe()
	if err != nil {
		logf.Close()
		return fail(err)
	}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fail(err)
	}
	s.cmd = cmd
	ready := make(chan string, 1)
	go func() {
		// Copy relayd's log to the file, watching for the line that names the address.
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		found := false
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintln(logf, line)
			if !found {
				if base, ok := servingURL(line); ok {
					found = true
					ready <- base
				}
			}
		}
		_, _ = io.Copy(logf, stderr)
		logf.Close()
		s.exited <- cmd.Wait()
	}()
	select {
	case base := <-ready:
		s.base = base
		return s, nil
	case err := <-s.exited:
		said := tail(s.logPath) // before the directory that holds it goes
		os.RemoveAll(dir)
		return nil, fmt.Errorf("spawn relayd: it exited before serving (%v); its log: %s", err, said)
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		<-s.exited
		os.RemoveAll(dir)
		return nil, errors.New("spawn relayd: no \"serving\" line within 60s")
	}
}

// servingURL finds the relay's address in the log line that says it serves: the plain form of
// older builds ("relayd: serving URL ..."), and the structured ones relayd writes now (text,
// "msg=serving url=URL ...", or JSON, "msg":"serving",..."url":"URL").
func servingURL(line string) (string, bool) {
	if _, rest, ok := strings.Cut(line, "relayd: serving "); ok {
		return strings.Fields(rest + " ")[0], true
	}
	if strings.Contains(line, "msg=serving ") {
		if _, rest, ok := strings.Cut(line, " url="); ok {
			return strings.Fields(rest + " ")[0], true
		}
	}
	if strings.Contains(line, `"msg":"serving"`) {
		var rec struct {
			URL string `json:"url"`
		}
		if json.Unmarshal([]byte(line), &rec) == nil && rec.URL != "" {
			return rec.URL, true
		}
	}
	return "", false
}

// stop ends relayd with SIGTERM (it closes terminals with 1001 and its store), kills it if it
// does not exit within 15 s, and removes its directory unless keep.
func (s *spawned) stop(keep bool) error {
	var err error
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case werr := <-s.exited:
		if werr != nil {
			err = fmt.Errorf("relayd exited: %v; its log: %s", werr, tail(s.logPath))
		}
	case <-time.After(15 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.exited
		err = errors.New("relayd did not exit within 15s of SIGTERM; killed")
	}
	if !keep {
		os.RemoveAll(s.dir)
	}
	return err
}

// tail is the end of a log file, for an error message.
func tail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(unreadable)"
	}
	if len(b) > 600 {
		b = b[len(b)-600:]
	}
	return strings.TrimSpace(string(b))
}
