package printer

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/tether-kiosk/tether/kiosk/clock"
)

// The few parts of IPP/1.1 (RFC 8010, 8011) a kiosk needs to print a PDF on a CUPS queue and
// follow the job: Print-Job and Get-Job-Attributes over HTTP, in the binary encoding.

// IPP operations and status codes used here.
const (
	opPrintJob         = 0x0002
	opGetJobAttributes = 0x0009

	statusNotFound = 0x0406 // client-error-not-found
)

// Value tags (RFC 8010 section 3.5).
const (
	tagOperation   = 0x01
	tagJob         = 0x02
	tagEnd         = 0x03
	tagInteger     = 0x21
	tagEnum        = 0x23
	tagText        = 0x41
	tagName        = 0x42
	tagKeyword     = 0x44
	tagURI         = 0x45
	tagCharset     = 0x47
	tagLanguage    = 0x48
	tagMimeType    = 0x49
	maxAttrsInResp = 4096
)

// JobState is an IPP job-state.
type JobState int

// IPP job states (RFC 8011 section 5.3.7).
const (
	JobPending    JobState = 3
	JobHeld       JobState = 4
	JobProcessing JobState = 5
	JobStopped    JobState = 6
	JobCanceled   JobState = 7
	JobAborted    JobState = 8
	JobCompleted  JobState = 9
)

// Done reports whether the printer will do no more with the job.
func (s JobState) Done() bool { return s >= JobCanceled && s <= JobCompleted }

func (s JobState) String() string {
	switch s {
	case JobPending:
		return "pending"
	case JobHeld:
		return "held"
	case JobProcessing:
		return "processing"
	case JobStopped:
		return "stopped"
	case JobCanceled:
		return "canceled"
	case JobAborted:
		return "aborted"
	case JobCompleted:
		return "completed"
	}
	return fmt.Sprintf("job-state %d", int(s))
}

// JobStatus is what the printer says of a job.
type JobStatus struct {
	ID      int
	State   JobState
	Reasons []string // job-state-reasons
	Message string   // job-state-message, if the printer gave one
}

// ErrNoSuchJob: the server does not know the job (purged from its history, or another server).
var ErrNoSuchJob = errors.New("printer: the print server does not know that job")

// ErrNoSuchQueue: the server has no queue of that name.
var ErrNoSuchQueue = errors.New("printer: the print server has no such queue")

// Printer is one named CUPS queue on a print server, reached over IPP.
type Printer struct {
	// Server is the CUPS server's host:port ("localhost:631" on a kiosk with its own CUPS).
	Server string
	// Queue is the CUPS queue (printer) name, as lpstat -p lists it.
	Queue string
	// User is the requesting-user-name: the terminal's, never an inmate's.
	User string
	// HTTP, if set, replaces http.DefaultClient.
	HTTP *http.Client
}

// CheckQueueName refuses a queue name CUPS would not accept, naming why.
func CheckQueueName(q string) error {
	if q == "" || len(q) > 127 {
		return fmt.Errorf("printer: queue name %q must be 1..127 characters", q)
	}
	for _, r := range q {
		if r <= ' ' || r == 0x7f || r == '/' || r == '#' || r == '\\' || r == '?' || r == '\'' || r == '"' {
			return fmt.Errorf("printer: queue name %q has a character CUPS does not allow (%q)", q, r)
		}
	}
	return nil
}

func (p *Printer) printerURI() string {
	return "ipp://" + p.Server + "/printers/" + url.PathEscape(p.Queue)
}

// Submit sends pdf to the queue as one job named name and returns the printer's job id.
func (p *Printer) Submit(ctx context.Context, name string, pdf []byte) (int, error) {
	if err := CheckQueueName(p.Queue); err != nil {
		return 0, err
	}
	req := p.request(opPrintJob, []attr{
		{tagName, "job-name", [][]byte{[]byte(name)}},
		{tagMimeType, "document-format", [][]byte{[]byte("application/pdf")}},
	})
	resp, err := p.call(ctx, "Print-Job", append(req, pdf...), ErrNoSuchQueue)
	if err != nil {
		return 0, err
	}
	id := resp.int("job-id")
	if id <= 0 {
		return 0, fmt.Errorf("printer: queue %s on %s accepted the job but returned no job id", p.Queue, p.Server)
	}
	return id, nil
}

// State asks the server where job id stands; ErrNoSuchJob if it does not know it.
func (p *Printer) State(ctx context.Context, id int) (JobStatus, error) {
	if err := CheckQueueName(p.Queue); err != nil {
		return JobStatus{}, err
	}
	var idb [4]byte
	binary.BigEndian.PutUint32(idb[:], uint32(id))
	req := p.request(opGetJobAttributes, []attr{
		{tagInteger, "job-id", [][]byte{idb[:]}},
		{tagKeyword, "requested-attributes", [][]byte{[]byte("job-id"), []byte("job-state"), []byte("job-state-reasons"), []byte("job-state-message")}},
	})
	resp, err := p.call(ctx, "Get-Job-Attributes", req, ErrNoSuchJob)
	if err != nil {
		return JobStatus{}, err
	}
	st := JobStatus{ID: id, State: JobState(resp.int("job-state")), Reasons: resp.strings("job-state-reasons")}
	if m := resp.strings("job-state-message"); len(m) > 0 {
		st.Message = m[0]
	}
	if st.State < JobPending || st.State > JobCompleted {
		return JobStatus{}, fmt.Errorf("printer: job %d on %s/%s: the server gave no job state (%d)", id, p.Server, p.Queue, int(st.State))
	}
	return st, nil
}

// Follow asks about job id every interval (on clk) until the printer is done with it or ctx
// ends; a server that cannot be reached for a moment is asked again.
func (p *Printer) Follow(ctx context.Context, clk clock.Clock, id int, every time.Duration) (JobStatus, error) {
	for {
		st, err := p.State(ctx, id)
		switch {
		case err == nil && st.State.Done():
			return st, nil
		case errors.Is(err, ErrNoSuchJob):
			return JobStatus{}, err
		}
		tm := clk.NewTimer(every)
		select {
		case <-ctx.Done():
			tm.Stop()
			if err == nil {
				err = fmt.Errorf("job %d is %s", id, st.State)
			}
			return JobStatus{}, fmt.Errorf("printer: stopped following the job: %w (last: %v)", ctx.Err(), err)
		case <-tm.C():
		}
	}
}

type attr struct {
	tag    byte
	name   string
	values [][]byte
}

// request encodes an IPP request with the operation attributes every request carries first.
func (p *Printer) request(op uint16, extra []attr) []byte {
	user := p.User
	if user == "" {
		user = "tether"
	}
	attrs := append([]attr{
		{tagCharset, "attributes-charset", [][]byte{[]byte("utf-8")}},
		{tagLanguage, "attributes-natural-language", [][]byte{[]byte("en")}},
		{tagURI, "printer-uri", [][]byte{[]byte(p.printerURI())}},
		{tagName, "requesting-user-name", [][]byte{[]byte(user)}},
	}, extra...)
	return encodeRequest(op, 1, attrs) // one request per HTTP exchange: the id matches nothing else
}

func encodeRequest(op uint16, reqID uint32, attrs []attr) []byte {
	var b bytes.Buffer
	b.Write([]byte{2, 0}) // IPP 2.0
	_ = binary.Write(&b, binary.BigEndian, op)
	_ = binary.Write(&b, binary.BigEndian, reqID)
	b.WriteByte(tagOperation)
	for _, a := range attrs {
		for i, v := range a.values {
			name := a.name
			if i > 0 {
				name = "" // an additional value of the same attribute
			}
			b.WriteByte(a.tag)
			_ = binary.Write(&b, binary.BigEndian, uint16(len(name)))
			b.WriteString(name)
			_ = binary.Write(&b, binary.BigEndian, uint16(len(v)))
			b.Write(v)
		}
	}
	b.WriteByte(tagEnd)
	return b.Bytes()
}

// maxResponse bounds what is read of a server's answer: a job's attributes are a few hundred bytes.
const maxResponse = 1 << 20

// call posts one request; notFound, if not nil, is what the server's not-found status means.
func (p *Printer) call(ctx context.Context, opName string, body []byte, notFound error) (*response, error) {
	where := fmt.Sprintf("%s on queue %s at %s", opName, p.Queue, p.Server)
	u := "http://" + p.Server + "/printers/" + url.PathEscape(p.Queue)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("printer: %s: %w", where, err)
	}
	req.Header.Set("Content-Type", "application/ipp")
	hc := p.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	res, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("printer: %s: the print server cannot be reached: %w", where, err)
	}
	defer res.Body.Close()
	data, err := io.ReadAll(io.LimitReader(res.Body, maxResponse+1))
	if err != nil {
		return nil, fmt.Errorf("printer: %s: read the answer: %w", where, err)
	}
	if res.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("printer: %s: the print server answered HTTP %s", where, res.Status)
	}
	if len(data) > maxResponse {
		return nil, fmt.Errorf("printer: %s: the answer is larger than %d bytes", where, maxResponse)
	}
	resp, err := parseResponse(data)
	if err != nil {
		return nil, fmt.Errorf("printer: %s: %w", where, err)
	}
	if resp.status == statusNotFound && notFound != nil {
		return nil, fmt.Errorf("%w (%s: %s)", notFound, where, resp.message())
	}
	if resp.status > 0x00ff {
		return nil, fmt.Errorf("printer: %s: refused with IPP status 0x%04x: %s", where, resp.status, resp.message())
	}
	return resp, nil
}

// response is a decoded IPP response: its status and every attribute, by name, from every group.
type response struct {
	status uint16
	attrs  map[string][]value
}

type value struct {
	tag  byte
	data []byte
}

func (r *response) int(name string) int {
	vs := r.attrs[name]
	if len(vs) == 0 || len(vs[0].data) != 4 || (vs[0].tag != tagInteger && vs[0].tag != tagEnum) {
		return 0
	}
	return int(int32(binary.BigEndian.Uint32(vs[0].data)))
}

func (r *response) strings(name string) []string {
	var out []string
	for _, v := range r.attrs[name] {
		if v.tag >= 0x40 && v.tag <= 0x4f { // the character-string tags
			out = append(out, string(v.data))
		}
	}
	return out
}

func (r *response) message() string {
	if m := r.strings("status-message"); len(m) > 0 {
		return strings.ToValidUTF8(m[0], "?")
	}
	return "no message"
}

// parseResponse decodes an IPP response (RFC 8010 section 3.1), refusing a truncated or
// malformed one with the offset where it went wrong. The first group of a name wins.
func parseResponse(b []byte) (*response, error) {
	if len(b) < 9 {
		return nil, fmt.Errorf("IPP response of %d bytes is too short", len(b))
	}
	if b[0] < 1 || b[0] > 2 {
		return nil, fmt.Errorf("IPP response version %d.%d is not 1.x or 2.x", b[0], b[1])
	}
	r := &response{status: binary.BigEndian.Uint16(b[2:4]), attrs: map[string][]value{}}
	i := 8
	inGroup := false
	last := ""
	seen := map[string]bool{} // names already taken from an earlier group
	n := 0
	for {
		if i >= len(b) {
			return nil, fmt.Errorf("IPP response ends at byte %d without end-of-attributes", i)
		}
		tag := b[i]
		if tag == tagEnd {
			return r, nil
		}
		if tag <= 0x0f { // a delimiter: a new group begins
			i++
			inGroup, last = true, ""
			for k := range r.attrs {
				seen[k] = true
			}
			continue
		}
		if !inGroup {
			return nil, fmt.Errorf("IPP response has a value at byte %d before any group", i)
		}
		if i+3 > len(b) {
			return nil, fmt.Errorf("IPP response is cut in the attribute at byte %d", i)
		}
		nl := int(binary.BigEndian.Uint16(b[i+1 : i+3]))
		if i+3+nl+2 > len(b) {
			return nil, fmt.Errorf("IPP response is cut in the attribute name at byte %d", i)
		}
		name := string(b[i+3 : i+3+nl])
		vl := int(binary.BigEndian.Uint16(b[i+3+nl : i+5+nl]))
		start := i + 5 + nl
		if start+vl > len(b) {
			return nil, fmt.Errorf("IPP response is cut in a value at byte %d", start)
		}
		if nl == 0 {
			if last == "" {
				return nil, fmt.Errorf("IPP response has an additional value at byte %d with no attribute before it", i)
			}
			name = last
		}
		if n++; n > maxAttrsInResp {
			return nil, fmt.Errorf("IPP response has more than %d values", maxAttrsInResp)
		}
		if !seen[name] {
			r.attrs[name] = append(r.attrs[name], value{tag: tag, data: b[start : start+vl]})
		}
		last = name
		i = start + vl
	}
}
