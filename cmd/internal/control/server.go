package control

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/tether-kiosk/tether/kiosk"
)

// EnrollRequest is `kioskctl enroll`'s input.
type EnrollRequest struct {
	RelayURL  string `json:"relay_url"`
	Code      string `json:"code"`
	CAFile    string `json:"ca_file,omitempty"`
	PinSHA256 string `json:"pin_sha256,omitempty"`
	Insecure  bool   `json:"insecure,omitempty"`
	Label     string `json:"label,omitempty"`
}

// EnrollResult is what the relay made of the terminal.
type EnrollResult struct {
	TerminalID string `json:"terminal_id"`
	Facility   string `json:"facility"`
	Mode       string `json:"mode"`
	InmateID   string `json:"inmate_id,omitempty"`
	RelayURL   string `json:"relay_url"`
}

// Options wire a Server. Terminal and DataDir are required.
type Options struct {
	DataDir  string
	Terminal *kiosk.Terminal
	// Sources returns the status sources; called per request (the relay URL may change).
	Sources func() Sources
	// Enroll enrolls the terminal (sync/client's enrollment, wired by cmd); nil refuses.
	Enroll func(ctx context.Context, actor string, r EnrollRequest) (EnrollResult, error)
	// Config returns `kioskctl config show`'s answer; nil refuses.
	Config func() (any, error)
	Logf   kiosk.Logf
}

// ActorHeader carries who asked (kioskctl sends its user), for the audit log.
const ActorHeader = "X-Tether-Actor"

// Server serves the control API on DataDir/control.sock, mode 0600.
type Server struct {
	o    Options
	ln   net.Listener
	srv  *http.Server
	path string
	done chan struct{}
}

// Listen creates the socket and serves it until Close. A stale socket from a crashed kioskd
// is replaced; one that answers belongs to a running kioskd and is an error.
func Listen(o Options) (*Server, error) {
	if o.Terminal == nil || o.DataDir == "" {
		return nil, errors.New("control: terminal and data directory are required")
	}
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
	if o.Sources == nil {
		o.Sources = func() Sources { return Sources{DataDir: o.DataDir} }
	}
	path := filepath.Join(o.DataDir, SocketFile)
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return nil, fmt.Errorf("control: %s answers: another kioskd runs on this data directory", path)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("control: remove stale socket: %w", err)
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("control: %w", err)
	}
	// The data directory is 0700 already; the socket itself is for its owner only too.
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("control: %w", err)
	}
	s := &Server{o: o, ln: ln, path: path, done: make(chan struct{})}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/status", s.status)
	mux.HandleFunc("POST /v1/enroll", s.enroll)
	mux.HandleFunc("GET /v1/config", s.config)
	mux.HandleFunc("POST /v1/record", s.record)
	mux.HandleFunc("GET /v1/backup", s.backup)
	mux.HandleFunc("POST /v1/verify", s.verify)
	mux.HandleFunc("POST /v1/reissue", s.reissue)
	s.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			o.Logf("control: %v", err)
		}
	}()
	return s, nil
}

// Path is the socket's path.
func (s *Server) Path() string { return s.path }

// Close stops serving and removes the socket.
func (s *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := s.srv.Shutdown(ctx)
	<-s.done
	os.Remove(s.path)
	return err
}

// apiError is the body of every non-200 answer.
type apiError struct {
	Kind    string `json:"error"`
	Message string `json:"message"`
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

func writeErr(w http.ResponseWriter, err error) {
	code := http.StatusInternalServerError
	switch kiosk.KindOf(err) {
	case kiosk.KindInvalid:
		code = http.StatusBadRequest
	case kiosk.KindNotFound:
		code = http.StatusNotFound
	case kiosk.KindRefused, kiosk.KindConflict:
		code = http.StatusConflict
	case kiosk.KindTransient:
		code = http.StatusServiceUnavailable // worth asking again later
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(apiError{Kind: kiosk.KindOf(err).String(), Message: err.Error()})
}

func actor(r *http.Request) string {
	if a := r.Header.Get(ActorHeader); a != "" && len(a) <= 64 {
		return a
	}
	return "kioskctl"
}

func (s *Server) status(w http.ResponseWriter, r *http.Request) {
	st, err := ComputeStatus(s.o.Terminal, s.o.Sources())
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, st)
}

func decode(r *http.Request, v any) error {
	dec := json.NewDecoder(io.LimitReader(r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return &kiosk.Error{Kind: kiosk.KindInvalid, Op: "control", Err: fmt.Errorf("request body: %w", err)}
	}
	return nil
}

func (s *Server) enroll(w http.ResponseWriter, r *http.Request) {
	if s.o.Enroll == nil {
		writeErr(w, &kiosk.Error{Kind: kiosk.KindRefused, Op: "enroll", Err: errors.New("this kioskd cannot enroll")})
		return
	}
	var req EnrollRequest
	if err := decode(r, &req); err != nil {
		writeErr(w, err)
		return
	}
	res, err := s.o.Enroll(r.Context(), actor(r), req)
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, res)
}

func (s *Server) config(w http.ResponseWriter, r *http.Request) {
	if s.o.Config == nil {
		writeErr(w, &kiosk.Error{Kind: kiosk.KindNotFound, Op: "config", Err: errors.New("this kioskd has no config file")})
		return
	}
	v, err := s.o.Config()
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, v)
}

// Record is an audit event a technician's tool asks the running kioskd to write.
type Record struct {
	Kind   string            `json:"kind"`
	Detail map[string]string `json:"detail,omitempty"`
}

func (s *Server) record(w http.ResponseWriter, r *http.Request) {
	var rec Record
	if err := decode(r, &rec); err != nil {
		writeErr(w, err)
		return
	}
	if rec.Kind == "" || len(rec.Kind) > 64 {
		writeErr(w, &kiosk.Error{Kind: kiosk.KindInvalid, Op: "record", Err: errors.New("kind must be 1 to 64 bytes")})
		return
	}
	if err := s.o.Terminal.RecordAction(rec.Kind, actor(r), rec.Detail); err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, struct{}{})
}

func (s *Server) backup(w http.ResponseWriter, r *http.Request) {
	started := false
	_, err := s.o.Terminal.Backup(w, actor(r), func(n int64) {
		started = true
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
		w.WriteHeader(http.StatusOK)
	})
	if err != nil && !started {
		writeErr(w, err)
		return
	}
	if err != nil {
		// Too late for a status: cutting the body short makes the client fail on the length.
		s.o.Logf("control: backup: %v", err)
		panic(http.ErrAbortHandler)
	}
}

func (s *Server) verify(w http.ResponseWriter, r *http.Request) {
	rep, err := s.o.Terminal.Verify(actor(r))
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, rep)
}

func (s *Server) reissue(w http.ResponseWriter, r *http.Request) {
	rep, err := s.o.Terminal.Reissue(actor(r))
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, rep)
}

// ErrNotRunning says no kioskd serves the data directory: the caller opens the store itself.
var ErrNotRunning = errors.New("kioskd not running")

// Client talks to a running kioskd.
type Client struct {
	hc    *http.Client
	Actor string
}

// Dial connects to the kioskd serving dataDir; ErrNotRunning when the socket is absent or
// refuses (a stale file after a crash).
func Dial(dataDir string) (*Client, error) {
	path := filepath.Join(dataDir, SocketFile)
	c, err := net.DialTimeout("unix", path, 2*time.Second)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ECONNREFUSED) {
			return nil, ErrNotRunning
		}
		return nil, fmt.Errorf("control socket %s: %w", path, err)
	}
	c.Close()
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", path)
	}}
	return &Client{hc: &http.Client{Transport: tr}}, nil
}

// Close releases idle connections.
func (c *Client) Close() { c.hc.CloseIdleConnections() }

// Error is a refusal or failure reported by kioskd; Message is the domain's own words.
type Error struct {
	Kind    string
	Message string
}

func (e *Error) Error() string { return e.Message }

func (c *Client) do(ctx context.Context, method, path string, in any) (*http.Response, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, err
		}
		body = bytesReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://kioskd"+path, body)
	if err != nil {
		return nil, err
	}
	if c.Actor != "" {
		req.Header.Set(ActorHeader, c.Actor)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("kioskd control API: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		var ae apiError
		raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		if json.Unmarshal(raw, &ae) != nil || ae.Message == "" {
			return nil, fmt.Errorf("kioskd control API: %s %s: %s", method, path, resp.Status)
		}
		return nil, &Error{Kind: ae.Kind, Message: ae.Message}
	}
	return resp, nil
}

func (c *Client) call(ctx context.Context, method, path string, in, out any) error {
	resp, err := c.do(ctx, method, path, in)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("kioskd control API: %s: %w", path, err)
	}
	return nil
}

// Status asks for the status.
func (c *Client) Status(ctx context.Context) (Status, error) {
	var st Status
	return st, c.call(ctx, http.MethodGet, "/v1/status", nil, &st)
}

// Enroll asks kioskd to enroll its terminal.
func (c *Client) Enroll(ctx context.Context, r EnrollRequest) (EnrollResult, error) {
	var res EnrollResult
	return res, c.call(ctx, http.MethodPost, "/v1/enroll", r, &res)
}

// Config returns kioskd's config answer, raw.
func (c *Client) Config(ctx context.Context) (json.RawMessage, error) {
	var raw json.RawMessage
	return raw, c.call(ctx, http.MethodGet, "/v1/config", nil, &raw)
}

// Record has kioskd audit a technician's action.
func (c *Client) Record(ctx context.Context, rec Record) error {
	var out struct{}
	return c.call(ctx, http.MethodPost, "/v1/record", rec, &out)
}

// Backup streams a consistent copy of the store into w; a cut stream is an error.
func (c *Client) Backup(ctx context.Context, w io.Writer) (int64, error) {
	resp, err := c.do(ctx, http.MethodGet, "/v1/backup", nil)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	n, err := io.Copy(w, resp.Body)
	if err == nil && resp.ContentLength >= 0 && n != resp.ContentLength {
		err = fmt.Errorf("got %d of %d bytes", n, resp.ContentLength)
	}
	if err != nil {
		return n, fmt.Errorf("backup from kioskd: %w", err)
	}
	return n, nil
}

// Verify asks kioskd to verify its store.
func (c *Client) Verify(ctx context.Context) (kiosk.VerifyReport, error) {
	var rep kiosk.VerifyReport
	return rep, c.call(ctx, http.MethodPost, "/v1/verify", struct{}{}, &rep)
}

// Reissue asks kioskd to reissue its terminal.
func (c *Client) Reissue(ctx context.Context) (kiosk.ReissueReport, error) {
	var rep kiosk.ReissueReport
	return rep, c.call(ctx, http.MethodPost, "/v1/reissue", struct{}{}, &rep)
}

func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }
