package console

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/google/uuid"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	qrcode "github.com/skip2/go-qrcode"

	"github.com/tether-kiosk/tether/kiosk/vocab"
	"github.com/tether-kiosk/tether/sync/relay"
	"github.com/tether-kiosk/tether/sync/wire"
)

// reasonLabels names, for staff, each reason a reviewer may reject with (vocab.ReviewReasons:
// the terminal translates each for the inmate); a reviewer's note follows after ": ".
var reasonLabels = map[string]string{
	vocab.ReviewContentPolicy:    "Content policy",
	vocab.ReviewThreat:           "A threat to safety or security",
	vocab.ReviewCriminal:         "Criminal activity",
	vocab.ReviewThirdParty:       "A message for or from a third party",
	vocab.ReviewCodedLanguage:    "Codes or wording that cannot be read",
	vocab.ReviewSexuallyExplicit: "Sexually explicit",
}

// rejectReasons is the review queue's list: every shared reason, in its order, with its label.
func rejectReasons() []struct{ Code, Label string } {
	var out []struct{ Code, Label string }
	for _, code := range vocab.ReviewReasons() {
		label := reasonLabels[code]
		if label == "" {
			label = code
		}
		out = append(out, struct{ Code, Label string }{code, label})
	}
	return out
}

// errScope is an action on a facility outside the account's.
var errScope = errors.New("that is not one of your facilities")

// facilities lists the facilities an account serves that the relay knows.
func (c *Console) facilities(u who) ([]string, error) {
	all, err := c.r.Facilities()
	if err != nil {
		return nil, err
	}
	var out []string
	for _, f := range all {
		if u.Serves(f) {
			out = append(out, f)
		}
	}
	return out, nil
}

func (c *Console) fail(w http.ResponseWriter, req *http.Request, u who, err error) {
	c.logf("console: %s %s: %v", req.Method, req.URL.Path, err)
	c.render(w, req, http.StatusInternalServerError, "error", u, pageData{Title: "Error", Error: err.Error()})
}

// inmateNames maps inmate id to name for the facilities served.
// It reads the rosters of those facilities only.
func (c *Console) inmateNames(u who) (map[string]relay.InmateInfo, error) {
	facs, err := c.facilities(u)
	if err != nil {
		return nil, err
	}
	return c.inmateNamesIn(facs)
}

// inmateNamesIn maps inmate id to name for the given facilities, reading their rosters.
func (c *Console) inmateNamesIn(facs []string) (map[string]relay.InmateInfo, error) {
	out := map[string]relay.InmateInfo{}
	for _, f := range facs {
		ins, err := c.r.Inmates(f)
		if err != nil {
			return nil, err
		}
		for _, in := range ins {
			out[in.ID] = in
		}
	}
	return out, nil
}

// ---- review queue

type heldRow struct {
	relay.Outbound
	InmateName string
	Held       time.Duration
	Target     time.Duration // the facility's review target (relay.Monitoring.ReviewTarget)
	Overdue    bool
}

// facilityTarget is a facility's review target as the review queue shows it.
type facilityTarget struct {
	Facility string
	Target   time.Duration
}

// reviewPage reads the held letters of the facilities the account serves (HeldOutbound), not
// every letter stored.
func (c *Console) reviewPage(w http.ResponseWriter, req *http.Request, u who) {
	facs, err := c.facilities(u)
	if err != nil {
		c.fail(w, req, u, err)
		return
	}
	held, err := c.r.HeldOutbound(facs...)
	if err != nil {
		c.fail(w, req, u, err)
		return
	}
	names, err := c.inmateNames(u)
	if err != nil {
		c.fail(w, req, u, err)
		return
	}
	// Each facility sets its own target (the policy screen); the queue shows all it serves.
	targets := map[string]time.Duration{}
	var list []facilityTarget
	for _, f := range facs {
		m, err := c.r.MonitoringOf(f)
		if err != nil {
			c.fail(w, req, u, err)
			return
		}
		targets[f] = m.ReviewTarget.D()
		list = append(list, facilityTarget{f, m.ReviewTarget.D()})
	}
	now := c.clock.Now()
	var rows []heldRow
	for _, o := range held {
		if !u.Serves(o.FacilityID) {
			continue
		}
		d, target := now.Sub(o.ReceivedAt), targets[o.FacilityID]
		if target <= 0 {
			target = relay.DefaultReviewTarget // a facility the relay forgot since the list
		}
		rows = append(rows, heldRow{Outbound: o, InmateName: names[o.InmateID].Name, Held: d, Target: target, Overdue: d > target})
	}
	sort.SliceStable(rows, func(i, j int) bool { return rows[i].ReceivedAt.Before(rows[j].ReceivedAt) })
	photoRows, err := c.heldPhotoRows(u, facs, names, targets, now) // photos.go
	if err != nil {
		c.fail(w, req, u, err)
		return
	}
	c.render(w, req, http.StatusOK, "review", u, pageData{Title: "Review queue", Current: "review", Data: map[string]any{
		"Rows": rows, "PhotoRows": photoRows, "Targets": list, "Reasons": rejectReasons()}})
}

// heldIn finds a held letter of a facility the account serves.
func (c *Console) heldIn(u who, id string) (relay.Outbound, error) {
	o, found, err := c.r.OutboundLetter(id)
	switch {
	case err != nil:
		return relay.Outbound{}, err
	case found && !u.Serves(o.FacilityID):
		return relay.Outbound{}, errScope
	case !found || o.Status != vocab.MsgHeld:
		return relay.Outbound{}, fmt.Errorf("letter %s is no longer held (someone decided it already?)", id)
	}
	return o, nil
}

func (c *Console) approve(w http.ResponseWriter, req *http.Request, u who) {
	id := req.PathValue("id")
	o, err := c.heldIn(u, id)
	if err == nil {
		_, err = c.r.ApproveOutbound(id)
	}
	if err == nil {
		c.audit(u, "letter.approve", id, o.FacilityID, "inmate "+o.InmateID)
	}
	back(w, req, "review", nil, "Approved the letter from "+o.InmateID+".", err)
}

func (c *Console) reject(w http.ResponseWriter, req *http.Request, u who) {
	id := req.PathValue("id")
	code := req.PostForm.Get("reason")
	if !vocab.IsReviewReason(code) {
		back(w, req, "review", nil, "", fmt.Errorf("choose a reason from the list"))
		return
	}
	note := strings.Join(strings.Fields(req.PostForm.Get("note")), " ")
	reason := code
	if note != "" {
		reason += ": " + note
	}
	o, err := c.heldIn(u, id)
	if err == nil {
		_, err = c.r.RejectOutbound(id, reason)
	}
	if err == nil {
		c.audit(u, "letter.reject", id, o.FacilityID, "inmate "+o.InmateID+"; "+code)
	}
	back(w, req, "review", nil, "Rejected the letter from "+o.InmateID+".", err)
}

// ---- contacts

// contactsPage reads the contacts of the facilities the account serves (ContactsOf) and
// their invitations, not every contact of the state.
func (c *Console) contactsPage(w http.ResponseWriter, req *http.Request, u who) {
	facs, err := c.facilities(u)
	if err != nil {
		c.fail(w, req, u, err)
		return
	}
	all, err := c.r.ContactsOf(facs...)
	if err != nil {
		c.fail(w, req, u, err)
		return
	}
	names, err := c.inmateNames(u)
	if err != nil {
		c.fail(w, req, u, err)
		return
	}
	ids := make([]string, len(all))
	for i, ct := range all {
		ids[i] = ct.ID
	}
	byContact, err := c.r.InvitationsOf(ids...)
	if err != nil {
		c.fail(w, req, u, err)
		return
	}
	var unsent []contactRow
	var pending, others []contactRow
	for _, ct := range all {
		r := contactRow{ContactRecord: ct, InmateName: names[ct.InmateID].Name}
		if v, ok := byContact[ct.ID]; ok && ct.State == vocab.ContactApproved {
			r.Invitation = &v
			// Expired, or never sent (no notifier, or it failed): staff may send it again.
			r.SendAgain = v.State == vocab.InviteExpired || (v.State == vocab.InviteInvited && !v.Sent)
			if v.State == vocab.InviteInvited && !v.Sent {
				unsent = append(unsent, r)
			}
		}
		if ct.State == vocab.ContactPending {
			pending = append(pending, r)
		} else {
			others = append(others, r)
		}
	}
	sort.SliceStable(pending, func(i, j int) bool { return pending[i].CreatedAt.Before(pending[j].CreatedAt) })
	sort.SliceStable(unsent, func(i, j int) bool { return unsent[i].Invitation.IssuedAt.Before(unsent[j].Invitation.IssuedAt) })
	c.render(w, req, http.StatusOK, "contacts", u, pageData{Title: "Contacts", Current: "contacts",
		Data: map[string]any{"Pending": pending, "Unsent": unsent, "Others": others}})
}

// contactRow is a contact as the contacts screen lists it, with its invitation once approved.
type contactRow struct {
	relay.ContactRecord
	InmateName string
	Invitation *relay.Invitation
	SendAgain  bool
}

// inviteAgain sends an approved contact's invitation again: a new one (a new code and expiry)
// when it expired unanswered, the same one when it was never sent.
func (c *Console) inviteAgain(w http.ResponseWriter, req *http.Request, u who) {
	id := req.PathValue("id")
	invs, err := c.r.InvitationsOf(id)
	if err != nil {
		back(w, req, "contacts", nil, "", err)
		return
	}
	v, ok := invs[id]
	if !ok {
		back(w, req, "contacts", nil, "", fmt.Errorf("contact %s has no invitation", id))
		return
	}
	if !u.Serves(v.FacilityID) {
		back(w, req, "contacts", nil, "", errScope)
		return
	}
	switch {
	case v.State == vocab.InviteExpired:
		v, err = c.r.ReissueInvitation(req.Context(), id)
	case v.State == vocab.InviteInvited && !v.Sent:
		v, err = c.r.SendInvitation(req.Context(), id)
	default:
		err = fmt.Errorf("the invitation of %s is %s: only an expired or unsent invitation is sent again", v.Name, v.State)
	}
	if err != nil {
		back(w, req, "contacts", nil, "", err)
		return
	}
	c.audit(u, "contact.invite_again", id, v.FacilityID, "inmate "+v.InmateID)
	if !v.Sent {
		back(w, req, "contacts", nil, "", fmt.Errorf("the invitation of %s is kept but could not be sent: %s", v.Name, v.LastError))
		return
	}
	back(w, req, "contacts", nil, "Invitation sent to "+v.Name+"; it expires "+when(v.ExpiresAt)+".", nil)
}

func (c *Console) decideContact(w http.ResponseWriter, req *http.Request, u who) {
	id, decision := req.PathValue("id"), req.PathValue("decision")
	ct, found, err := c.r.Contact(id)
	switch {
	case err != nil:
	case found && !u.Serves(ct.FacilityID):
		err = errScope
	case !found || ct.State != vocab.ContactPending:
		err = fmt.Errorf("contact %s is not pending", id)
	case decision == "approve":
		_, err = c.r.ApproveContact(id)
	case decision == "decline":
		_, err = c.r.DeclineContact(id, strings.TrimSpace(req.PostForm.Get("reason")))
	default:
		http.Error(w, "no such decision", http.StatusNotFound)
		return
	}
	if err == nil {
		c.audit(u, "contact."+decision, id, ct.FacilityID, "inmate "+ct.InmateID)
	}
	back(w, req, "contacts", nil, "Contact "+decision+"d.", err)
}

// ---- departments

type requestRow struct {
	relay.Outbound
	InmateName string
	Department string
	Replies    []vocab.Message
	// ReplyKey is minted for each rendering of the form: the relay stores one answer per key,
	// so a form sent twice (a double click, a resubmitted page) answers once.
	ReplyKey string
	CSRF     string // the session's token, for the row's own form template
}

func (c *Console) departmentsPage(w http.ResponseWriter, req *http.Request, u who) {
	facs, err := c.facilities(u)
	if err != nil {
		c.fail(w, req, u, err)
		return
	}
	depts := map[string]map[string]string{} // facility -> dept id -> name
	for _, f := range facs {
		p, err := c.r.Policy(f)
		if err != nil {
			c.fail(w, req, u, err)
			return
		}
		depts[f] = map[string]string{}
		for _, d := range p.Departments {
			depts[f][d.ID] = d.Name
		}
	}
	all, err := c.r.RequestsOf(facs...)
	if err != nil {
		c.fail(w, req, u, err)
		return
	}
	names, err := c.inmateNames(u)
	if err != nil {
		c.fail(w, req, u, err)
		return
	}
	var rows []requestRow
	for _, rq := range all {
		name, ok := depts[rq.FacilityID][rq.Peer] // a department the policy still names
		if !ok {
			continue
		}
		rows = append(rows, requestRow{Outbound: rq.Outbound, InmateName: names[rq.InmateID].Name, Department: name, Replies: rq.Replies,
			ReplyKey: uuid.NewString(), CSRF: u.sess.CSRF})
	}
	// Waiting for an answer (held for review, or delivered and unanswered), oldest first, on
	// top: those are the work. Answered and rejected requests below, newest first.
	var pending, done []requestRow
	for _, r := range rows {
		if len(r.Replies) == 0 && r.Status != vocab.MsgRejected {
			pending = append(pending, r)
		} else {
			done = append(done, r)
		}
	}
	sort.SliceStable(pending, func(i, j int) bool { return pending[i].ReceivedAt.Before(pending[j].ReceivedAt) })
	sort.SliceStable(done, func(i, j int) bool { return done[i].ReceivedAt.After(done[j].ReceivedAt) })
	c.render(w, req, http.StatusOK, "departments", u, pageData{Title: "Departments", Current: "departments",
		Data: map[string]any{"Pending": pending, "Done": done}})
}

func (c *Console) reply(w http.ResponseWriter, req *http.Request, u who) {
	id := req.PathValue("id")
	o, found, err := c.r.OutboundLetter(id)
	if err != nil {
		back(w, req, "departments", nil, "", err)
		return
	}
	if !found {
		back(w, req, "departments", nil, "", fmt.Errorf("no request %s", id))
		return
	}
	if !u.Serves(o.FacilityID) {
		back(w, req, "departments", nil, "", errScope)
		return
	}
	_, _, err = c.r.ReplyToRequest(id, relay.ReplyRequest{ID: req.PostForm.Get("reply_id"), From: o.Peer, Body: req.PostForm.Get("body")})
	if err == nil {
		c.audit(u, "request.reply", id, o.FacilityID, "inmate "+o.InmateID+"; department "+o.Peer)
	}
	back(w, req, "departments", nil, "Answer sent.", err)
}

// ---- notices

var noticeExpiries = []struct {
	Value string
	Label string
}{{"1h", "1 hour"}, {"8h", "8 hours"}, {"24h", "1 day"}, {"72h", "3 days"}, {"168h", "1 week"}, {"720h", "30 days"}, {"", "No expiry"}}

func (c *Console) noticesPage(w http.ResponseWriter, req *http.Request, u who) {
	facs, err := c.facilities(u)
	if err != nil {
		c.fail(w, req, u, err)
		return
	}
	c.render(w, req, http.StatusOK, "notices", u, pageData{Title: "Notices", Current: "notices",
		Data: map[string]any{"Facilities": facs, "Expiries": noticeExpiries}})
}

func (c *Console) postNotice(w http.ResponseWriter, req *http.Request, u who) {
	f := req.PostForm
	fac, inmate := f.Get("facility"), strings.TrimSpace(f.Get("inmate"))
	if !u.Serves(fac) {
		back(w, req, "notices", nil, "", errScope)
		return
	}
	var until time.Time
	if e := f.Get("expires"); e != "" {
		d, err := time.ParseDuration(e)
		if err != nil || d <= 0 || d > 366*24*time.Hour {
			back(w, req, "notices", nil, "", fmt.Errorf("expiry %q is not one of the choices", e))
			return
		}
		until = c.clock.Now().Add(d)
	}
	texts := map[string]string{"en": strings.TrimSpace(f.Get("text_en")), "es": strings.TrimSpace(f.Get("text_es"))}
	if texts["en"] == "" && texts["es"] == "" {
		back(w, req, "notices", nil, "", fmt.Errorf("write the notice in English, Spanish or both"))
		return
	}
	var posted []string
	for _, lang := range []string{"en", "es"} {
		if texts[lang] == "" {
			continue
		}
		n, err := c.r.PostNotice(relay.NoticeRequest{FacilityID: fac, InmateID: inmate, Text: texts[lang], Language: lang, Until: until})
		if err != nil {
			back(w, req, "notices", nil, "", err)
			return
		}
		posted = append(posted, lang)
		target := fac
		if inmate != "" {
			target = inmate
		}
		c.audit(u, "notice.post", n.ID, fac, "to "+target+" in "+lang)
	}
	back(w, req, "notices", nil, "Notice posted ("+strings.Join(posted, ", ")+").", nil)
}

// ---- money

func (c *Console) moneyPage(w http.ResponseWriter, req *http.Request, u who) {
	names, err := c.inmateNames(u)
	if err != nil {
		c.fail(w, req, u, err)
		return
	}
	inmates := make([]relay.InmateInfo, 0, len(names))
	for _, in := range names {
		inmates = append(inmates, in)
	}
	sort.Slice(inmates, func(i, j int) bool { return inmates[i].ID < inmates[j].ID })
	ref, err := newToken()
	if err != nil {
		c.fail(w, req, u, err)
		return
	}
	data := map[string]any{"Inmates": inmates, "Ref": "web-" + ref[:12]}
	if id := req.URL.Query().Get("inmate"); id != "" {
		if _, ok := names[id]; !ok {
			c.render(w, req, http.StatusNotFound, "money", u, pageData{Title: "Money", Current: "money", Error: "No inmate " + id + " in your facilities.", Data: data})
			return
		}
		bal, err := c.r.Balance(id)
		if err != nil {
			c.fail(w, req, u, err)
			return
		}
		use, err := c.r.Usage(id)
		if err != nil {
			c.fail(w, req, u, err)
			return
		}
		deps, refs, err := c.r.DepositsOf(id)
		if err != nil {
			c.fail(w, req, u, err)
			return
		}
		rref, err := newToken()
		if err != nil {
			c.fail(w, req, u, err)
			return
		}
		lines, refundable := ledgerLines(use.Records, deps, refs)
		data["Inmate"], data["Balance"], data["Lines"], data["Refundable"] = names[id], bal, lines, refundable
		data["RefundRef"] = "refund-" + rref[:12]
	}
	c.render(w, req, http.StatusOK, "money", u, pageData{Title: "Money", Current: "money", Data: data})
}

func (c *Console) deposit(w http.ResponseWriter, req *http.Request, u who) {
	f := req.PostForm
	id, ref := f.Get("inmate"), strings.TrimSpace(f.Get("ref"))
	q := url.Values{"inmate": {id}}
	names, err := c.inmateNames(u)
	if err != nil {
		back(w, req, "money", q, "", err)
		return
	}
	in, ok := names[id]
	if !ok {
		back(w, req, "money", nil, "", fmt.Errorf("no inmate %q in your facilities", id))
		return
	}
	cents, err := parseCents(f.Get("amount"))
	if err != nil {
		back(w, req, "money", q, "", err)
		return
	}
	d, created, err := c.r.Deposit(relay.DepositRequest{InmateID: id, Cents: cents, Ref: ref})
	if err != nil {
		back(w, req, "money", q, "", err)
		return
	}
	if !created {
		back(w, req, "money", q, "", fmt.Errorf("reference %s was already recorded (%s on %s): nothing added", ref, d.Cents, when(d.At)))
		return
	}
	c.audit(u, "deposit", ref, in.FacilityID, fmt.Sprintf("inmate %s; %s", id, cents))
	back(w, req, "money", q, "Deposited "+cents.String()+" for "+id+" (ref "+ref+").", nil)
}

// ledgerLine is one movement of an inmate's money as the relay holds it, the lines the
// terminal's statement shows (kiosk.StatementLine): Cents is what it did to the balance,
// negative for a charge or a refund, and Balance the balance right after it.
type ledgerLine struct {
	Kind       string
	At         time.Time
	Cents      vocab.Cents
	Balance    vocab.Cents
	Ref        string // deposits and refunds: their reference
	DepositRef string // refunds: the deposit the money came out of
	SessionID  string
	Minute     int
	MessageID  string
	Reason     string
	TerminalID string
}

// refundable is a deposit money may still be given back from.
type refundable struct {
	vocab.Deposit
	Left vocab.Cents
}

// ledgerLines merges an inmate's charges and credits with the deposits and refunds, newest
// first with a running balance (ties as the terminal orders them: deposits, charges, credits,
// refunds), and lists the deposits with money left to refund.
func ledgerLines(records []relay.UsageRecord, deps []vocab.Deposit, refs []relay.Refund) ([]ledgerLine, []refundable) {
	var lines []ledgerLine
	left := map[string]vocab.Cents{}
	for _, d := range deps {
		lines = append(lines, ledgerLine{Kind: "deposit", At: d.At, Cents: d.Cents, Ref: d.Ref})
		left[d.Ref] = d.Cents
	}
	for _, r := range records {
		l := ledgerLine{Kind: r.Kind, At: r.At, Cents: r.Cents, SessionID: r.SessionID, Minute: r.Minute, MessageID: r.MessageID,
			Reason: r.Reason, TerminalID: r.TerminalID}
		if r.Kind != "credit" {
			l.Cents = -r.Cents
		}
		lines = append(lines, l)
	}
	for _, r := range refs {
		lines = append(lines, ledgerLine{Kind: "refund", At: r.At, Cents: -r.Cents, Ref: r.Ref, DepositRef: r.DepositRef, Reason: r.Reason})
		left[r.DepositRef] -= r.Cents
	}
	rank := map[string]int{"deposit": 0, "charge": 1, "credit": 2, "refund": 3}
	sort.SliceStable(lines, func(i, j int) bool {
		if !lines[i].At.Equal(lines[j].At) {
			return lines[i].At.Before(lines[j].At)
		}
		return rank[lines[i].Kind] < rank[lines[j].Kind]
	})
	var run vocab.Cents
	for i := range lines {
		run += lines[i].Cents
		lines[i].Balance = run
	}
	slices.Reverse(lines)
	var out []refundable
	for _, d := range deps {
		if left[d.Ref] > 0 {
			out = append(out, refundable{Deposit: d, Left: left[d.Ref]})
		}
	}
	return lines, out
}

// refund gives back money out of one of an inmate's deposits. The refund has its own
// reference, minted with the form, so a form sent twice refunds once; the relay refuses more
// than is left of the deposit or than the balance, and the message says which.
func (c *Console) refund(w http.ResponseWriter, req *http.Request, u who) {
	f := req.PostForm
	id, dref, ref := f.Get("inmate"), strings.TrimSpace(f.Get("deposit")), strings.TrimSpace(f.Get("ref"))
	q := url.Values{"inmate": {id}}
	names, err := c.inmateNames(u)
	if err != nil {
		back(w, req, "money", q, "", err)
		return
	}
	in, ok := names[id]
	if !ok {
		back(w, req, "money", nil, "", fmt.Errorf("no inmate %q in your facilities", id))
		return
	}
	deps, _, err := c.r.DepositsOf(id)
	if err != nil {
		back(w, req, "money", q, "", err)
		return
	}
	// The deposit must be this inmate's: a reference typed or forged for another inmate's
	// deposit (perhaps of another facility) is refused here, before the relay is asked.
	if !slices.ContainsFunc(deps, func(d vocab.Deposit) bool { return d.Ref == dref }) {
		back(w, req, "money", q, "", fmt.Errorf("deposit %q is not one of %s's deposits", dref, id))
		return
	}
	cents, err := parseCents(f.Get("amount"))
	if err == nil && cents <= 0 {
		err = errors.New("amount: a refund is more than $0.00")
	}
	if err != nil {
		back(w, req, "money", q, "", err)
		return
	}
	reason := strings.Join(strings.Fields(f.Get("reason")), " ")
	rf, created, err := c.r.Refund(relay.RefundRequest{Ref: ref, DepositRef: dref, Cents: cents, Reason: reason})
	if err != nil {
		back(w, req, "money", q, "", refundRefusal(err))
		return
	}
	if !created {
		back(w, req, "money", q, "", fmt.Errorf("refund %s was already recorded (%s on %s): nothing more given back", ref, rf.Cents, when(rf.At)))
		return
	}
	c.audit(u, "refund", ref, in.FacilityID, fmt.Sprintf("inmate %s; %s from deposit %s", id, cents, dref))
	back(w, req, "money", q, "Refunded "+cents.String()+" to "+id+" from deposit "+dref+" (ref "+ref+").", nil)
}

// refundRefusal words the relay's refusals of a refund for the business office: what was
// wrong, and that nothing was given back.
func refundRefusal(err error) error {
	var fe *relay.FieldError
	if !errors.As(err, &fe) {
		return err
	}
	switch {
	case fe.Field == "cents" && vocab.KindOf(err) == vocab.KindConflict:
		return fmt.Errorf("refund refused, nothing given back: %s", fe.Msg)
	case fe.Field == "ref" && vocab.KindOf(err) == vocab.KindConflict:
		return errors.New("refund refused, nothing given back: that reference was already used for a different refund (reload the page for a new one)")
	}
	return fmt.Errorf("refund refused, nothing given back: %s: %s", fe.Field, fe.Msg)
}

// ---- terminals

// facilityHome is where a facility's terminals connect, on a relay of several gateways.
type facilityHome struct {
	Facility, Home string
	Here           bool   // Home is the gateway serving this page
	Page           string // the facility's terminals page on Home (http or https: a terminal's ws(s) URL names the same server)
}

type termRow struct {
	relay.TerminalInfo
	Backlog uint64
	Device  string
	Faults  []string
}

func (c *Console) terminalsPage(w http.ResponseWriter, req *http.Request, u who) {
	c.terminals(w, req, u, http.StatusOK, nil)
}

// terminals shows the terminals of the facility chosen (?facility=), or of every facility the
// user serves. It reads those facilities' terminals only and their device reports in one read,
// so a facility's page costs the same in a state as in one prison; from replicas (FleetOf)
// when the page is only looked at, and fresh (TerminalsOf) when it answers what the user just
// did (an enrollment, a revocation), which must show in it.
func (c *Console) terminals(w http.ResponseWriter, req *http.Request, u who, status int, enrolled map[string]any) {
	facs, shown, fac, ok := c.chosenFacilities(w, req, u, "terminals", "Terminals")
	if !ok {
		return
	}
	var all []relay.TerminalInfo
	var err error
	list := c.r.FleetOf
	if q := req.URL.Query(); req.Method != http.MethodGet || enrolled != nil || q.Has("ok") || q.Has("err") {
		list = c.r.TerminalsOf // an action's answer, or the page its redirect leads to (back)
	}
	if len(shown) > 0 {
		if all, err = list(shown...); err != nil {
			c.fail(w, req, u, err)
			return
		}
	}
	ids := make([]string, len(all))
	for i, t := range all {
		ids[i] = t.ID
	}
	devices, err := c.r.DeviceStatuses(ids...)
	if err != nil {
		c.fail(w, req, u, err)
		return
	}
	rows := make([]termRow, 0, len(all))
	for _, t := range all {
		row := termRow{TerminalInfo: t, Backlog: t.DownQueued - min(t.DownAcked, t.DownQueued)}
		if body, found := devices[t.ID]; found {
			row.Device, row.Faults = deviceSummary(body)
		}
		rows = append(rows, row)
	}
	// Live terminals first, the longest silent on top: those are the ones to visit.
	sort.SliceStable(rows, func(i, j int) bool {
		if rows[i].Revoked != rows[j].Revoked {
			return !rows[i].Revoked
		}
		return rows[i].LastSeen.Before(rows[j].LastSeen)
	})
	// On a relay of several gateways, say which gateway serves this page and where each
	// facility shown connects; a terminal online through another gateway says which.
	self := c.r.GatewayURL()
	var homes []facilityHome
	if self != "" {
		for _, f := range shown {
			h := c.r.HomeOf(f)
			page := h
			if rest, ok := strings.CutPrefix(h, "wss://"); ok {
				page = "https://" + rest
			} else if rest, ok := strings.CutPrefix(h, "ws://"); ok {
				page = "http://" + rest
			}
			page = strings.TrimSuffix(page, "/") + "/console/terminals?facility=" + url.QueryEscape(f)
			homes = append(homes, facilityHome{Facility: f, Home: h, Here: h == self, Page: page})
		}
	}
	c.render(w, req, status, "terminals", u, pageData{Title: "Terminals", Current: "terminals",
		Data: map[string]any{"Rows": rows, "Facilities": facs, "Facility": fac, "Enrolled": enrolled, "Self": self, "Homes": homes,
			"Disagreeing": c.r.GatewaysDisagreeing()}})
}

// deviceSummary shows a device_status body as short text, and the entries that look like
// faults (a false "ok", an "error", a "fault", a non-empty "faults").
func deviceSummary(body json.RawMessage) (string, []string) {
	var m map[string]any
	if json.Unmarshal(body, &m) != nil {
		return "", nil
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts, faults []string
	for _, k := range keys {
		v := m[k]
		s := fmt.Sprint(v)
		if raw, err := json.Marshal(v); err == nil {
			s = string(raw)
		}
		if len(s) > 80 {
			s = s[:80] + "…"
		}
		parts = append(parts, k+"="+s)
		lk := strings.ToLower(k)
		switch {
		case strings.Contains(lk, "fault") || strings.Contains(lk, "error"):
			if v != nil && v != "" && v != false && s != "[]" && s != "{}" {
				faults = append(faults, k+": "+s)
			}
		case strings.HasSuffix(lk, "ok") && v == false:
			faults = append(faults, k+" is not ok")
		}
	}
	return strings.Join(parts, " "), faults
}

func (c *Console) revoke(w http.ResponseWriter, req *http.Request, u who) {
	id := req.PathValue("id")
	t, found, err := c.r.Terminal(id)
	switch {
	case err != nil:
	case !found:
		err = fmt.Errorf("no terminal %s", id)
	case !u.Serves(t.FacilityID):
		err = errScope
	default:
		err = c.r.Revoke(id)
	}
	if err == nil {
		c.audit(u, "terminal.revoke", id, t.FacilityID, "")
	}
	back(w, req, "terminals", nil, "Terminal "+id+" revoked.", err)
}

func (c *Console) enroll(w http.ResponseWriter, req *http.Request, u who) {
	f := req.PostForm
	er := relay.EnrollmentRequest{FacilityID: f.Get("facility"), Mode: f.Get("mode"), InmateID: strings.TrimSpace(f.Get("inmate"))}
	if er.Mode == wire.ModeKiosk {
		er.InmateID = ""
	}
	if !u.Serves(er.FacilityID) {
		back(w, req, "terminals", nil, "", errScope)
		return
	}
	en, err := c.r.CreateEnrollment(er)
	if err != nil {
		back(w, req, "terminals", nil, "", err)
		return
	}
	png, err := qrcode.Encode(en.Code, qrcode.Medium, 256)
	if err != nil {
		c.fail(w, req, u, fmt.Errorf("QR code: %w", err))
		return
	}
	// The code is shown once, on this answer; the audit log never holds it.
	c.audit(u, "terminal.enrollment_code", er.Mode, er.FacilityID, "expires "+when(en.ExpiresAt))
	c.terminals(w, req, u, http.StatusOK, map[string]any{"Code": en.Code, "Expires": en.ExpiresAt, "Mode": er.Mode,
		"Facility": er.FacilityID, "QR": template.URL("data:image/png;base64," + base64.StdEncoding.EncodeToString(png))})
}

// ---- PREA

// preaPage shows the PREA reports of the facility chosen (?facility=), or of every facility
// the user serves. It reads those facilities' reports only (PREAReportsOf), so a prison's
// coordinator's page costs the same in a state as in one prison; a report of a facility the
// user does not serve is never put on the page, whatever the relay returns.
// chosenFacilities is the facilities user u serves and those a page shows: all of them, or the
// one asked for with ?facility=, which must be one of them (otherwise the page answers 403
// itself and ok is false).
func (c *Console) chosenFacilities(w http.ResponseWriter, req *http.Request, u who, page, title string) (facs, shown []string, fac string, ok bool) {
	facs, err := c.facilities(u)
	if err != nil {
		c.fail(w, req, u, err)
		return nil, nil, "", false
	}
	shown = facs
	if fac = req.URL.Query().Get("facility"); fac != "" {
		if !slices.Contains(facs, fac) {
			c.render(w, req, http.StatusForbidden, page, u, pageData{Title: title, Current: page,
				Error: errScope.Error(), Data: map[string]any{"Facilities": facs, "Facility": fac}})
			return nil, nil, "", false
		}
		shown = []string{fac}
	}
	return facs, shown, fac, true
}

func (c *Console) preaPage(w http.ResponseWriter, req *http.Request, u who) {
	facs, shown, fac, ok := c.chosenFacilities(w, req, u, "prea", "PREA reports")
	if !ok {
		return
	}
	reports, err := c.r.PREAReportsOf(shown...)
	if err != nil {
		c.fail(w, req, u, err)
		return
	}
	names, err := c.inmateNamesIn(shown)
	if err != nil {
		c.fail(w, req, u, err)
		return
	}
	var rows []heldRow
	for _, o := range reports {
		if u.Serves(o.FacilityID) {
			rows = append(rows, heldRow{Outbound: o, InmateName: names[o.InmateID].Name})
		}
	}
	// The count only: a report's text, and who filed it, stay out of the audit log. A page of
	// one facility is that facility's entry, so its admin reads it (audit.go).
	logged := fac
	if len(shown) == 1 {
		logged = shown[0]
	}
	c.audit(u, "prea.view", "", logged, fmt.Sprintf("%d reports", len(rows)))
	c.render(w, req, http.StatusOK, "prea", u, pageData{Title: "PREA reports", Current: "prea",
		Data: map[string]any{"Rows": rows, "Facilities": facs, "Facility": fac}})
}

// ---- policy

func (c *Console) policyPage(w http.ResponseWriter, req *http.Request, u who) {
	facs, err := c.facilities(u)
	if err != nil {
		c.fail(w, req, u, err)
		return
	}
	fac := req.URL.Query().Get("facility")
	if fac == "" && len(facs) > 0 {
		fac = facs[0]
	}
	data := map[string]any{"Facilities": facs, "Facility": fac}
	if fac != "" {
		if !slices.Contains(facs, fac) {
			c.render(w, req, http.StatusForbidden, "error", u, pageData{Title: "Not allowed", Error: errScope.Error()})
			return
		}
		p, err := c.r.Policy(fac)
		if err != nil {
			c.fail(w, req, u, err)
			return
		}
		m, err := c.r.MonitoringOf(fac)
		if err != nil {
			c.fail(w, req, u, err)
			return
		}
		data["Policy"], data["Monitoring"] = p, m
	}
	c.render(w, req, http.StatusOK, "policy", u, pageData{Title: "Policy", Current: "policy", Data: data})
}

func (c *Console) putPolicy(w http.ResponseWriter, req *http.Request, u who) {
	f := req.PostForm
	fac := f.Get("facility")
	q := url.Values{"facility": {fac}}
	if !u.Serves(fac) {
		back(w, req, "policy", nil, "", errScope)
		return
	}
	p, err := c.r.Policy(fac)
	if err != nil {
		back(w, req, "policy", q, "", err)
		return
	}
	var errs []string
	num := func(name string, dst *int) {
		v, err := strconv.Atoi(strings.TrimSpace(f.Get(name)))
		if err != nil {
			errs = append(errs, name+": a whole number")
			return
		}
		*dst = v
	}
	cents := func(name string, dst *vocab.Cents) {
		v, err := parseCents(f.Get(name))
		if err != nil {
			errs = append(errs, name+": "+err.Error())
			return
		}
		*dst = v
	}
	dur := func(name string, dst *vocab.Duration) {
		v, err := time.ParseDuration(strings.TrimSpace(f.Get(name)))
		if err != nil {
			errs = append(errs, name+": a duration like 30m or 1h30m")
			return
		}
		*dst = vocab.Duration(v)
	}
	p.FacilityName = strings.TrimSpace(f.Get("facility_name"))
	cents("rate", &p.RatePerMinute)
	dur("max_session", &p.MaxSession)
	dur("idle_timeout", &p.IdleTimeout)
	dur("cooldown", &p.Cooldown)
	dur("idle_cooldown", &p.IdleCooldown)
	num("max_contacts", &p.MaxContacts)
	num("max_message_chars", &p.MaxMessageChars)
	cents("max_deposit", &p.MaxDeposit)
	cents("offline_spend_cap", &p.OfflineSpendCap)
	// A form from before stamps has neither field: the stored pricing stays.
	if v := strings.TrimSpace(f.Get("pricing")); v != "" {
		p.Pricing = v
	}
	if f.Has("stamp_price") {
		cents("stamp_price", &p.StampPrice)
	}
	// Printing (a form from before printing has neither field: the stored ones stay).
	if f.Has("print_page_price") {
		cents("print_page_price", &p.PrintPagePrice)
	}
	if f.Has("max_print_pages") {
		num("max_print_pages", &p.MaxPrintPages)
	}
	if f.Has("photo_keep_days") { // a form from before it keeps the stored value
		num("photo_keep_days", &p.PhotoKeepDays)
	}
	p.Lockdown = f.Get("lockdown") == "on"
	if cw, err := parseCurfew(f.Get("curfew")); err != nil {
		errs = append(errs, err.Error())
	} else {
		p.Curfew = cw
	}
	// Requests' own review, apart from the email hold; a form without the field keeps it, as
	// it keeps the review target.
	mon := relay.Monitoring{HoldOutbound: f.Get("hold_outbound") == "on", RequestReview: f.Get("request_review"),
		PhotoReview: f.Get("photo_review")}
	if f.Has("review_target") {
		n := len(errs)
		dur("review_target", &mon.ReviewTarget)
		if len(errs) == n && mon.ReviewTarget.D() < time.Minute || mon.ReviewTarget.D() > 31*24*time.Hour {
			errs = append(errs, "review_target: between 1m and 744h")
		}
	}
	switch mon.RequestReview {
	case "", relay.RequestReviewNone, relay.RequestReviewHold:
	default:
		errs = append(errs, fmt.Sprintf("request_review: %q is not none or hold", mon.RequestReview))
	}
	switch mon.PhotoReview {
	case "", relay.PhotoReviewNone, relay.PhotoReviewHold:
	default:
		errs = append(errs, fmt.Sprintf("photo_review: %q is not none or hold", mon.PhotoReview))
	}
	if len(errs) > 0 {
		back(w, req, "policy", q, "", errors.New(strings.Join(errs, "; ")))
		return
	}
	if err := c.r.PutPolicy(fac, p); err != nil {
		back(w, req, "policy", q, "", err)
		return
	}
	if err := c.r.SetMonitoring(fac, mon); err != nil {
		back(w, req, "policy", q, "", err)
		return
	}
	c.audit(u, "policy.put", fac, fac, fmt.Sprintf("rate %s, pricing %s, stamp %s, lockdown %v, hold %v, request review %s, photo review %s, photo keep days %d, review target %s",
		p.RatePerMinute, p.Pricing, p.StampPrice, p.Lockdown, mon.HoldOutbound, mon.RequestReview, mon.PhotoReview, p.PhotoKeepDays, mon.ReviewTarget.D()))
	back(w, req, "policy", q, "Policy saved; the facility's terminals get it at their next sync.", nil)
}

// addFacility starts a facility with the default policy under a new id; its roster comes
// through the admin API (PUT .../roster) as before. Only an admin of every facility may: a
// facility's own admin would otherwise grow their scope.
func (c *Console) addFacility(w http.ResponseWriter, req *http.Request, u who) {
	id, name := strings.TrimSpace(req.PostForm.Get("id")), strings.TrimSpace(req.PostForm.Get("name"))
	if !slices.Contains(u.Facilities, AllFacilities) {
		back(w, req, "policy", nil, "", errors.New("only an admin of every facility adds facilities"))
		return
	}
	all, err := c.r.Facilities()
	if err != nil {
		back(w, req, "policy", nil, "", err)
		return
	}
	if slices.Contains(all, id) {
		back(w, req, "policy", nil, "", fmt.Errorf("facility %q already exists", id))
		return
	}
	p := vocab.DefaultPolicy()
	p.FacilityName = name
	if name == "" {
		back(w, req, "policy", nil, "", errors.New("name: required"))
		return
	}
	if err := c.r.PutPolicy(id, p); err != nil {
		back(w, req, "policy", nil, "", err)
		return
	}
	c.audit(u, "facility.add", id, id, "")
	back(w, req, "policy", url.Values{"facility": {id}}, "Facility "+id+" added with the default policy; put its roster with the admin API.", nil)
}

// ---- accounts and audit

// manages reports whether admin u may see and change account a: a holds a facility u serves.
// An account of every facility is only for an admin of every facility (u.Serves("*") is
// false for the others). An account of north and south is managed by the admins of both.
func manages(u, a Account) bool { return slices.ContainsFunc(a.Facilities, u.Serves) }

// accountsPage lists the accounts the admin manages: a prison's admin does not see the other
// prisons' staff (names, roles, facilities), as they may not change them.
func (c *Console) accountsPage(w http.ResponseWriter, req *http.Request, u who) {
	all, err := c.store.Accounts()
	if err != nil {
		c.fail(w, req, u, err)
		return
	}
	shown := slices.DeleteFunc(all, func(a Account) bool { return !manages(u.Account, a) })
	c.render(w, req, http.StatusOK, "accounts", u, pageData{Title: "Accounts", Current: "accounts",
		Data: map[string]any{"Accounts": shown, "Roles": roleList}})
}

func (c *Console) addAccount(w http.ResponseWriter, req *http.Request, u who) {
	f := req.PostForm
	var facs []string
	facs = append(facs, strings.FieldsFunc(f.Get("facilities"), func(r rune) bool { return r == ',' || r == ' ' })...)
	for _, fac := range facs {
		// An admin grants only what they hold: a facility's admin cannot mint a wider account.
		if (fac == AllFacilities && !slices.Contains(u.Facilities, AllFacilities)) || !u.Serves(fac) {
			back(w, req, "accounts", nil, "", fmt.Errorf("facility %q: %w", fac, errScope))
			return
		}
	}
	a, err := c.store.AddAccount(c.clock.Now(), u.Username, NewAccount{Username: f.Get("username"), Name: f.Get("name"),
		Password: f.Get("password"), Roles: f["roles"], Facilities: facs})
	back(w, req, "accounts", nil, "Account "+a.Username+" added.", err)
}

func (c *Console) setAccount(w http.ResponseWriter, req *http.Request, u who) {
	name, state := req.PathValue("username"), req.PathValue("state")
	if state != "disable" && state != "enable" {
		http.Error(w, "no such change", http.StatusNotFound)
		return
	}
	if name == u.Username {
		back(w, req, "accounts", nil, "", errors.New("you cannot disable your own account"))
		return
	}
	a, ok, err := c.store.Account(name)
	if err == nil && (!ok || !manages(u.Account, a)) {
		err = fmt.Errorf("account %q: %w", name, errScope)
	}
	if err == nil {
		err = c.store.SetDisabled(c.clock.Now(), u.Username, name, state == "disable")
	}
	back(w, req, "accounts", nil, "Account "+name+" "+state+"d.", err)
}
