package relay

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/tether-kiosk/tether/kiosk/vocab"
	"github.com/tether-kiosk/tether/sync/wire"
)

// Body limits of the admin API.
const (
	maxAdminBody  = 1 << 20
	maxRosterBody = 32 << 20
)

// ErrorBody is every non-2xx answer of the admin API.
type ErrorBody struct {
	Error string `json:"error"`
	Field string `json:"field,omitempty"`
	// Reason is a refusal's code, where it has one (a photo's: photo_too_many_pixels...).
	Reason string `json:"reason,omitempty"`
}

// ServeHTTP makes the relay itself an http.Handler.
func (r *Relay) ServeHTTP(w http.ResponseWriter, req *http.Request) { r.handler.ServeHTTP(w, req) }

type route struct {
	methods map[string]http.HandlerFunc
	query   []string // query parameters this route accepts
}

func (r *Relay) routeAdmin(mux *http.ServeMux) {
	type h = http.HandlerFunc
	routes := map[string]route{
		"/admin/v1/enrollments":                         {methods: map[string]http.HandlerFunc{"POST": h(r.hEnroll)}},
		"/admin/v1/facilities/{facility}/roster":        {methods: map[string]http.HandlerFunc{"PUT": h(r.hRoster)}},
		"/admin/v1/facilities/{facility}/policy":        {methods: map[string]http.HandlerFunc{"PUT": h(r.hPutPolicy), "GET": h(r.hGetPolicy)}},
		"/admin/v1/facilities/{facility}/monitoring":    {methods: map[string]http.HandlerFunc{"PUT": h(r.hMonitoring), "GET": h(r.hGetMonitoring)}},
		"/admin/v1/notices":                             {methods: map[string]http.HandlerFunc{"POST": h(r.hNotice)}},
		"/admin/v1/deposits":                            {methods: map[string]http.HandlerFunc{"POST": h(r.hDeposit)}},
		"/admin/v1/inbound":                             {methods: map[string]http.HandlerFunc{"POST": h(r.hInbound)}},
		"/admin/v1/inbound/{message_id}/photos/{index}": {methods: map[string]http.HandlerFunc{"GET": h(r.hInboundPhoto)}},
		"/admin/v1/requests/{message_id}/reply":         {methods: map[string]http.HandlerFunc{"POST": h(r.hReply)}},
		"/admin/v1/outbound":                            {methods: map[string]http.HandlerFunc{"GET": h(r.hOutbound)}, query: []string{"status", "inmate_id"}},
		"/admin/v1/outbound/{id}/approve":               {methods: map[string]http.HandlerFunc{"POST": h(r.hApproveOutbound)}},
		"/admin/v1/outbound/{id}/reject":                {methods: map[string]http.HandlerFunc{"POST": h(r.hRejectOutbound)}},
		"/admin/v1/prea":                                {methods: map[string]http.HandlerFunc{"GET": h(r.hPREA)}, query: []string{"inmate_id", "facility_id"}},
		"/admin/v1/contacts":                            {methods: map[string]http.HandlerFunc{"GET": h(r.hContacts)}, query: []string{"status", "inmate_id", "facility_id"}},
		"/admin/v1/contacts/{id}/approve":               {methods: map[string]http.HandlerFunc{"POST": h(r.hApproveContact)}},
		"/admin/v1/contacts/{id}/decline":               {methods: map[string]http.HandlerFunc{"POST": h(r.hDeclineContact)}},
		"/admin/v1/contacts/{id}/invitation":            {methods: map[string]http.HandlerFunc{"POST": h(r.hReissueInvitation)}},
		"/admin/v1/invitations":                         {methods: map[string]http.HandlerFunc{"GET": h(r.hInvitations)}, query: []string{"unsent", "facility_id"}},
		"/admin/v1/invitations/retry":                   {methods: map[string]http.HandlerFunc{"POST": h(r.hRetryInvitations)}},
		"/admin/v1/refunds":                             {methods: map[string]http.HandlerFunc{"POST": h(r.hRefund)}},
		"/admin/v1/usage":                               {methods: map[string]http.HandlerFunc{"GET": h(r.hUsage)}, query: []string{"inmate_id"}},
		"/admin/v1/balances/{inmate_id}":                {methods: map[string]http.HandlerFunc{"GET": h(r.hBalance)}},
		"/admin/v1/items":                               {methods: map[string]http.HandlerFunc{"GET": h(r.hItems)}, query: []string{"terminal_id", "kind"}},
		"/admin/v1/refusals":                            {methods: map[string]http.HandlerFunc{"GET": h(r.hRefusals)}, query: []string{"terminal_id"}},
		"/admin/v1/terminals":                           {methods: map[string]http.HandlerFunc{"GET": h(r.hTerminals)}, query: []string{"facility_id"}},
		"/admin/v1/verify":                              {methods: map[string]http.HandlerFunc{"GET": h(r.hVerify)}},
		PathBackup:                                      {methods: map[string]http.HandlerFunc{"GET": h(r.hBackup)}},
		"/admin/v1/terminals/{id}/revoke":               {methods: map[string]http.HandlerFunc{"POST": h(r.hRevoke)}},
		"/admin/v1/catalog":                             {methods: map[string]http.HandlerFunc{"POST": h(r.hPublishCatalog), "GET": h(r.hListCatalog)}, query: []string{"facility_id"}},
		"/admin/v1/catalog/media":                       {methods: map[string]http.HandlerFunc{"POST": h(r.hCatalogMedia)}, query: []string{"facility_id", "type"}},
		"/admin/v1/catalog/{facility}/{id}":             {methods: map[string]http.HandlerFunc{"DELETE": h(r.hWithdrawCatalog)}},
	}
	for pattern, rt := range routes {
		mux.Handle(pattern, r.admin(rt))
	}
	mux.Handle("/admin/", r.admin(route{}))
}

// admin wraps a route with the bearer-token check, method and query validation, and a log line.
func (r *Relay) admin(rt route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK, req: req}
		start := r.clock.Now()
		defer func() {
			// The path and status only: bodies may hold PINs, headers the token.
			r.logf("relay: admin %s %s -> %d (%v)", req.Method, req.URL.Path, sw.status, r.clock.Now().Sub(start).Round(time.Millisecond))
			r.metrics.adminRequest(req, sw.status)
		}()
		if !r.authorized(sw, req) {
			return
		}
		if rt.methods == nil {
			writeJSON(sw, http.StatusNotFound, ErrorBody{Error: "no such admin call", Field: "path"})
			return
		}
		fn, ok := rt.methods[req.Method]
		if !ok {
			allow := make([]string, 0, len(rt.methods))
			for m := range rt.methods {
				allow = append(allow, m)
			}
			sw.Header().Set("Allow", strings.Join(allow, ", "))
			writeJSON(sw, http.StatusMethodNotAllowed, ErrorBody{Error: "method " + req.Method + " not allowed here", Field: "method"})
			return
		}
		for name := range req.URL.Query() {
			known := false
			for _, q := range rt.query {
				known = known || q == name
			}
			if !known {
				writeJSON(sw, http.StatusBadRequest, ErrorBody{Error: "unknown query parameter", Field: name})
				return
			}
		}
		fn(sw, req)
	})
}

type statusWriter struct {
	http.ResponseWriter
	status int
	req    *http.Request // the call answered, for a redirect to where it is made (writeErr)
}

func (s *statusWriter) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}

// authorized checks "Authorization: Bearer <token>" in constant time (over hashes, so the length leaks nothing either).
func (r *Relay) authorized(w http.ResponseWriter, req *http.Request) bool {
	if r.cfg.AdminToken == "" {
		writeJSON(w, http.StatusForbidden, ErrorBody{Error: "the admin API is disabled: this relay has no admin token"})
		return false
	}
	got, ok := strings.CutPrefix(req.Header.Get("Authorization"), "Bearer ")
	want := sha256.Sum256([]byte(r.cfg.AdminToken))
	have := sha256.Sum256([]byte(strings.TrimSpace(got)))
	if !ok || subtle.ConstantTimeCompare(want[:], have[:]) != 1 {
		w.Header().Set("WWW-Authenticate", `Bearer realm="tether relay admin"`)
		writeJSON(w, http.StatusUnauthorized, ErrorBody{Error: "a valid bearer token is required", Field: "Authorization"})
		return false
	}
	return true
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// writeErr answers with the status of the error's kind and the field it names; storage and
// internal errors say no more than that (the log has the detail).
func (r *Relay) writeErr(w http.ResponseWriter, err error) {
	field := FieldOf(err)
	var fe *FieldError
	msg := err.Error()
	if errors.As(err, &fe) {
		msg = fe.Msg
	}
	var reason string
	var ve *vocab.Error
	if errors.As(err, &ve) {
		reason = string(ve.Reason)
	}
	var he *HeldElsewhereError
	if errors.As(err, &he) && he.Self {
		// Sent to itself, a client would follow the redirect in a loop.
		w.Header().Set("Retry-After", "5")
		writeJSON(w, http.StatusServiceUnavailable, ErrorBody{Error: he.Error(), Field: "facility"})
		return
	}
	if he != nil {
		// The call is the holder's to make: sent there, method and body kept (307). A client
		// sends its token again there; Go's and curl's drop it on a redirect to another host.
		sw, ok := w.(*statusWriter)
		if u := he.holderURL(); ok && u != nil {
			// The gateway's URL is its terminals'; its admin API is served beside them.
			loc := url.URL{Scheme: u.Scheme, Host: u.Host, Path: sw.req.URL.Path, RawQuery: sw.req.URL.RawQuery}
			w.Header().Set("Location", loc.String())
			writeJSON(w, http.StatusTemporaryRedirect, ErrorBody{Error: he.Error(), Field: "facility"})
			return
		}
		writeJSON(w, http.StatusConflict, ErrorBody{Error: he.Error(), Field: "facility"})
		return
	}
	switch vocab.KindOf(err) {
	case vocab.KindInvalid:
		if field == "body" && strings.Contains(msg, "too large") {
			writeJSON(w, http.StatusRequestEntityTooLarge, ErrorBody{Error: msg, Field: field})
			return
		}
		writeJSON(w, http.StatusBadRequest, ErrorBody{Error: msg, Field: field, Reason: reason})
	case vocab.KindNotFound:
		writeJSON(w, http.StatusNotFound, ErrorBody{Error: msg, Field: field})
	case vocab.KindConflict, vocab.KindRefused:
		writeJSON(w, http.StatusConflict, ErrorBody{Error: msg, Field: field})
	case vocab.KindTransient:
		// The same call succeeds shortly (an inmate's records being handed over).
		w.Header().Set("Retry-After", "5")
		writeJSON(w, http.StatusServiceUnavailable, ErrorBody{Error: msg, Field: field})
	default:
		r.logf("relay: admin call failed: %v", err)
		writeJSON(w, http.StatusInternalServerError, ErrorBody{Error: "the relay could not complete the request; see its log"})
	}
}

// Admin request decoders, one per body shape: pure functions of the bytes so they can be fuzzed.

func decodeEnrollmentRequest(b []byte) (EnrollmentRequest, error) {
	var v EnrollmentRequest
	return v, decodeStrict("create enrollment", b, &v)
}

func decodeRoster(b []byte) (Roster, error) {
	var v Roster
	return v, decodeStrict("put roster", b, &v)
}

// decodePolicy reads a whole policy: PUT replaces the facility's policy with exactly the body,
// so every field must be present (an empty list or string where that is what is meant). A
// body that leaves fields out is refused naming them, rather than silently resetting them to
// the defaults (what a partial PUT used to do) or keeping stale stored values (a merge, under
// which lists and the notice map would also behave unlike the scalars).
func decodePolicy(b []byte) (vocab.Policy, error) {
	const op = "put policy"
	var v vocab.Policy
	if err := decodeStrict(op, b, &v); err != nil {
		return vocab.Policy{}, err
	}
	var present map[string]json.RawMessage
	if err := json.Unmarshal(b, &present); err != nil {
		return vocab.Policy{}, invalid(op, "body", "must be a JSON object")
	}
	var missing []string
	for _, name := range policyFields() {
		if _, ok := present[name]; !ok {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		return vocab.Policy{}, invalid(op, missing[0], "the policy is missing %s: PUT takes the whole policy (GET it, change it, PUT it back)",
			strings.Join(missing, ", "))
	}
	return v, nil
}

// policyFields lists the JSON names of vocab.Policy's fields, from its struct tags, so a field
// added to the policy is required by PUT without a second list to keep in step.
func policyFields() []string {
	t := reflect.TypeFor[vocab.Policy]()
	names := make([]string, 0, t.NumField())
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		if name != "" && name != "-" {
			names = append(names, name)
		}
	}
	return names
}

func decodeMonitoring(b []byte) (Monitoring, error) {
	var v struct {
		HoldOutbound  *bool  `json:"hold_outbound"`
		RequestReview string `json:"request_review"`
		PhotoReview   string `json:"photo_review"`
		// A string parsed here, so a bad duration is refused naming the field.
		ReviewTarget string `json:"review_target"`
	}
	if err := decodeStrict("set monitoring", b, &v); err != nil {
		return Monitoring{}, err
	}
	if v.HoldOutbound == nil {
		return Monitoring{}, invalid("set monitoring", "hold_outbound", "is required (true or false)")
	}
	m := Monitoring{HoldOutbound: *v.HoldOutbound, RequestReview: v.RequestReview, PhotoReview: v.PhotoReview}
	if v.ReviewTarget != "" {
		d, err := time.ParseDuration(v.ReviewTarget)
		if err != nil || d == 0 {
			return Monitoring{}, invalid("set monitoring", "review_target", "is not a duration like \"4h\"")
		}
		m.ReviewTarget = vocab.Duration(d)
	}
	return m, nil
}

func decodeNotice(b []byte) (NoticeRequest, error) {
	var v NoticeRequest
	return v, decodeStrict("post notice", b, &v)
}

func decodeDeposit(b []byte) (DepositRequest, error) {
	var v DepositRequest
	return v, decodeStrict("deposit", b, &v)
}

func decodeRefund(b []byte) (RefundRequest, error) {
	var v RefundRequest
	return v, decodeStrict("refund", b, &v)
}

func decodeReply(b []byte) (ReplyRequest, error) {
	var v ReplyRequest
	return v, decodeStrict("reply to request", b, &v)
}

func decodeInbound(b []byte) (InboundRequest, error) {
	var v InboundRequest
	return v, decodeStrict("inbound", b, &v)
}

// reasonBody is the body of reject and decline.
type reasonBody struct {
	Reason string `json:"reason"`
}

func decodeReason(b []byte, required bool) (string, error) {
	var v reasonBody
	if !required && len(strings.TrimSpace(string(b))) == 0 {
		return "", nil
	}
	err := decodeStrict("review", b, &v)
	return v.Reason, err
}

func body(op string, req *http.Request, limit int64) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(req.Body, limit+1))
	if err != nil {
		return nil, invalid(op, "body", "cannot be read: %v", err)
	}
	if int64(len(data)) > limit {
		return nil, invalid(op, "body", "is too large (limit %d bytes)", limit)
	}
	return data, nil
}

func (r *Relay) hEnroll(w http.ResponseWriter, req *http.Request) {
	b, err := body("create enrollment", req, maxAdminBody)
	if err == nil {
		var er EnrollmentRequest
		if er, err = decodeEnrollmentRequest(b); err == nil {
			var e Enrollment
			if e, err = r.CreateEnrollment(er); err == nil {
				writeJSON(w, http.StatusCreated, e)
				return
			}
		}
	}
	r.writeErr(w, err)
}

func (r *Relay) hRoster(w http.ResponseWriter, req *http.Request) {
	b, err := body("put roster", req, maxRosterBody)
	if err == nil {
		var ro Roster
		if ro, err = decodeRoster(b); err == nil {
			if err = r.PutRoster(req.PathValue("facility"), ro); err == nil {
				writeJSON(w, http.StatusOK, map[string]int{"inmates": len(ro.Inmates), "technicians": len(ro.Technicians)})
				return
			}
		}
	}
	r.writeErr(w, err)
}

func (r *Relay) hPutPolicy(w http.ResponseWriter, req *http.Request) {
	b, err := body("put policy", req, maxAdminBody)
	if err == nil {
		var p vocab.Policy
		if p, err = decodePolicy(b); err == nil {
			if err = r.PutPolicy(req.PathValue("facility"), p); err == nil {
				writeJSON(w, http.StatusOK, p)
				return
			}
		}
	}
	r.writeErr(w, err)
}

func (r *Relay) hGetPolicy(w http.ResponseWriter, req *http.Request) {
	p, err := r.Policy(req.PathValue("facility"))
	if err != nil {
		r.writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, p)
}

func (r *Relay) hMonitoring(w http.ResponseWriter, req *http.Request) {
	b, err := body("set monitoring", req, maxAdminBody)
	if err == nil {
		var m Monitoring
		if m, err = decodeMonitoring(b); err == nil {
			if err = r.SetMonitoring(req.PathValue("facility"), m); err == nil {
				writeJSON(w, http.StatusOK, m)
				return
			}
		}
	}
	r.writeErr(w, err)
}

func (r *Relay) hNotice(w http.ResponseWriter, req *http.Request) {
	b, err := body("post notice", req, maxAdminBody)
	if err == nil {
		var nr NoticeRequest
		if nr, err = decodeNotice(b); err == nil {
			var n wire.Notice
			if n, err = r.PostNotice(nr); err == nil {
				writeJSON(w, http.StatusCreated, n)
				return
			}
		}
	}
	r.writeErr(w, err)
}

func (r *Relay) hDeposit(w http.ResponseWriter, req *http.Request) {
	b, err := body("deposit", req, maxAdminBody)
	if err == nil {
		var dr DepositRequest
		if dr, err = decodeDeposit(b); err == nil {
			d, created, derr := r.Deposit(dr)
			if err = derr; err == nil {
				status := http.StatusOK
				if created {
					status = http.StatusCreated
				}
				writeJSON(w, status, d)
				return
			}
		}
	}
	r.writeErr(w, err)
}

func (r *Relay) hInbound(w http.ResponseWriter, req *http.Request) {
	b, err := body("inbound", req, maxInboundBody)
	if err == nil {
		var ir InboundRequest
		if ir, err = decodeInbound(b); err == nil {
			var m vocab.Message
			if m, err = r.Inbound(ir); err == nil {
				writeJSON(w, http.StatusCreated, m)
				return
			}
		}
	}
	r.writeErr(w, err)
}

func (r *Relay) hReply(w http.ResponseWriter, req *http.Request) {
	b, err := body("reply to request", req, maxAdminBody)
	if err == nil {
		var rr ReplyRequest
		if rr, err = decodeReply(b); err == nil {
			// The Idempotency-Key header and a body "id" are the same thing; given both, they agree.
			if key := strings.TrimSpace(req.Header.Get("Idempotency-Key")); key != "" {
				if rr.ID != "" && rr.ID != key {
					r.writeErr(w, invalid("reply to request", "Idempotency-Key", "differs from the body's id"))
					return
				}
				rr.ID = key
			}
			var m vocab.Message
			var created bool
			if m, created, err = r.ReplyToRequest(req.PathValue("message_id"), rr); err == nil {
				status := http.StatusOK
				if created {
					status = http.StatusCreated
				}
				writeJSON(w, status, m)
				return
			}
		}
	}
	r.writeErr(w, err)
}

func (r *Relay) hOutbound(w http.ResponseWriter, req *http.Request) {
	q := req.URL.Query()
	list, err := r.Outbound(OutboundFilter{Status: q.Get("status"), InmateID: q.Get("inmate_id")})
	if err != nil {
		r.writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"messages": list})
}

// hPREA is GET /admin/v1/prea: every report, or one inmate's; with ?facility_id= (repeatable)
// those facilities' only, which reads their lists (schema 20) and not the state's reports.
func (r *Relay) hPREA(w http.ResponseWriter, req *http.Request) {
	q := req.URL.Query()
	inmate := q.Get("inmate_id")
	var list []Outbound
	var err error
	if facs := q["facility_id"]; len(facs) > 0 {
		if inmate != "" {
			err = checkID("list PREA reports", "inmate_id", inmate)
		}
		if err == nil {
			list, err = r.PREAReportsOf(facs...)
		}
		if inmate != "" {
			list = slices.DeleteFunc(list, func(o Outbound) bool { return o.InmateID != inmate })
		}
	} else {
		list, err = r.PREAReports(inmate)
	}
	if err != nil {
		r.writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"reports": list})
}

func (r *Relay) hApproveOutbound(w http.ResponseWriter, req *http.Request) {
	o, err := r.ApproveOutbound(req.PathValue("id"))
	if err != nil {
		r.writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, o)
}

func (r *Relay) hRejectOutbound(w http.ResponseWriter, req *http.Request) {
	b, err := body("reject outbound", req, maxAdminBody)
	if err == nil {
		var reason string
		if reason, err = decodeReason(b, true); err == nil {
			var o Outbound
			if o, err = r.RejectOutbound(req.PathValue("id"), reason); err == nil {
				writeJSON(w, http.StatusOK, o)
				return
			}
		}
	}
	r.writeErr(w, err)
}

// hContacts is GET /admin/v1/contacts: every contact, or with ?facility_id= (repeatable)
// those facilities' only, oldest first, which reads theirs and not the state's.
func (r *Relay) hContacts(w http.ResponseWriter, req *http.Request) {
	q := req.URL.Query()
	var list []ContactRecord
	var err error
	if facs := q["facility_id"]; len(facs) > 0 {
		list, err = r.ContactsIn(facs, q.Get("status"), q.Get("inmate_id"))
	} else {
		list, err = r.Contacts(q.Get("status"), q.Get("inmate_id"))
	}
	if err != nil {
		r.writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"contacts": list})
}

func (r *Relay) hApproveContact(w http.ResponseWriter, req *http.Request) {
	c, err := r.ApproveContact(req.PathValue("id"))
	if err != nil {
		r.writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, c)
}

func (r *Relay) hDeclineContact(w http.ResponseWriter, req *http.Request) {
	b, err := body("decline contact", req, maxAdminBody)
	if err == nil {
		var reason string
		if reason, err = decodeReason(b, false); err == nil {
			var c ContactRecord
			if c, err = r.DeclineContact(req.PathValue("id"), reason); err == nil {
				writeJSON(w, http.StatusOK, c)
				return
			}
		}
	}
	r.writeErr(w, err)
}

func (r *Relay) hUsage(w http.ResponseWriter, req *http.Request) {
	u, err := r.Usage(req.URL.Query().Get("inmate_id"))
	if err != nil {
		r.writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, u)
}

func (r *Relay) hBalance(w http.ResponseWriter, req *http.Request) {
	b, err := r.Balance(req.PathValue("inmate_id"))
	if err != nil {
		r.writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, b)
}

func (r *Relay) hItems(w http.ResponseWriter, req *http.Request) {
	q := req.URL.Query()
	items, err := r.Items(ItemFilter{TerminalID: q.Get("terminal_id"), Kind: q.Get("kind")})
	if err != nil {
		r.writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"items": items})
}

func (r *Relay) hRefusals(w http.ResponseWriter, req *http.Request) {
	rs, err := r.Refusals(RefusalFilter{TerminalID: req.URL.Query().Get("terminal_id")})
	if err != nil {
		r.writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"refusals": rs})
}

func (r *Relay) hVerify(w http.ResponseWriter, req *http.Request) {
	rep, err := r.Verify()
	if err != nil {
		r.writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, rep)
}

// hTerminals is GET /admin/v1/terminals: every terminal, or with ?facility_id= (repeatable)
// those facilities' only, which reads theirs and not the state's.
func (r *Relay) hTerminals(w http.ResponseWriter, req *http.Request) {
	var ts []TerminalInfo
	var err error
	if facs := req.URL.Query()["facility_id"]; len(facs) > 0 {
		ts, err = r.TerminalsOf(facs...)
	} else {
		ts, err = r.Terminals()
	}
	if err != nil {
		r.writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"terminals": ts})
}

func (r *Relay) hRevoke(w http.ResponseWriter, req *http.Request) {
	id := req.PathValue("id")
	if err := r.Revoke(id); err != nil {
		r.writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"id": id, "revoked": true})
}

// serveEnroll is POST /v1/enroll: a terminal spends a one-time code on its public key.
func (r *Relay) serveEnroll(w http.ResponseWriter, req *http.Request) {
	// Unauthenticated: the whole body must arrive within EnrollReadTimeout. A server that
	// cannot set deadlines (not net/http's) keeps its own limits.
	_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(r.cfg.EnrollReadTimeout))
	data, err := io.ReadAll(io.LimitReader(req.Body, wire.MaxEnrollBytes+1))
	if err != nil {
		writeJSON(w, http.StatusBadRequest, wire.ErrorResponse{Error: wire.EnrollInvalid, Message: "the request body cannot be read"})
		return
	}
	er, err := wire.DecodeEnrollRequest(data)
	if errors.Is(err, wire.ErrBadEnrollSignature) {
		writeJSON(w, http.StatusBadRequest, wire.ErrorResponse{Error: wire.EnrollBadSignature, Message: "the signature does not match the public key and code"})
		return
	}
	if err != nil {
		writeJSON(w, http.StatusBadRequest, wire.ErrorResponse{Error: wire.EnrollInvalid, Message: wire.CloseReason(err.Error())})
		return
	}
	resp, err := r.Enroll(er)
	var ee *EnrollError
	switch {
	case err == nil:
		writeJSON(w, http.StatusOK, resp)
	case errors.As(err, &ee):
		status := map[string]int{wire.EnrollUnknownCode: http.StatusNotFound, wire.EnrollCodeUsed: http.StatusConflict,
			wire.EnrollCodeExpired: http.StatusGone, wire.EnrollKeyInUse: http.StatusConflict}[ee.Code]
		if status == 0 {
			status = http.StatusBadRequest
		}
		r.logf("relay: enrollment refused: %s", ee.Code)
		writeJSON(w, status, wire.ErrorResponse{Error: ee.Code, Message: ee.Msg})
	default:
		r.logf("relay: enrollment failed: %v", err)
		writeJSON(w, http.StatusInternalServerError, wire.ErrorResponse{Error: "internal", Message: "the relay could not enroll the terminal; see its log"})
	}
}

// hInvitations is GET /admin/v1/invitations: every invitation, or with ?facility_id=
// (repeatable) those of the facilities' contacts only, which reads theirs and not the state's.
func (r *Relay) hInvitations(w http.ResponseWriter, req *http.Request) {
	unsent := false
	switch v := req.URL.Query().Get("unsent"); v {
	case "", "false":
	case "true":
		unsent = true
	default:
		r.writeErr(w, invalid("list invitations", "unsent", "must be true or false"))
		return
	}
	var list []Invitation
	var err error
	if facs := req.URL.Query()["facility_id"]; len(facs) > 0 {
		list, err = r.InvitationsIn(facs, unsent)
	} else {
		list, err = r.Invitations(unsent)
	}
	if err != nil {
		r.writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"invitations": list})
}

func (r *Relay) hRetryInvitations(w http.ResponseWriter, req *http.Request) {
	sent, failed, err := r.RetryInvitations(req.Context())
	if err != nil {
		r.writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]int{"sent": sent, "failed": failed})
}

func (r *Relay) hReissueInvitation(w http.ResponseWriter, req *http.Request) {
	inv, err := r.ReissueInvitation(req.Context(), req.PathValue("id"))
	if err != nil {
		r.writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, inv)
}

func (r *Relay) hGetMonitoring(w http.ResponseWriter, req *http.Request) {
	m, err := r.MonitoringOf(req.PathValue("facility"))
	if err != nil {
		r.writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, m)
}

func (r *Relay) hRefund(w http.ResponseWriter, req *http.Request) {
	b, err := body("refund", req, maxAdminBody)
	if err == nil {
		var rr RefundRequest
		if rr, err = decodeRefund(b); err == nil {
			var rf Refund
			var created bool
			if rf, created, err = r.Refund(rr); err == nil {
				status := http.StatusOK
				if created {
					status = http.StatusCreated
				}
				writeJSON(w, status, rf)
				return
			}
		}
	}
	r.writeErr(w, err)
}
