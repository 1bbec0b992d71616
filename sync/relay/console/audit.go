package console

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// auditLimit is how many entries the audit log page shows at most.
const auditLimit = 300

// The audit log page (role admin) shows an admin the entries of the facilities they serve,
// as every other page does: a prison's admin must not read another prison's trail (its
// inmate ids, its staff's sign-ins and decisions).
//
// An entry that names a facility belongs to it. Sign-ins, sign-outs, failed sign-ins and
// account changes name none; they belong to the facilities of the accounts they are about:
// the account that acted (Who) and, for an account change, the account changed (Target).
// So a prison's admin sees the sign-ins of their own staff, the failed attempts on those
// accounts and the changes made to them (by whomever), exactly the accounts the Accounts page
// lets them disable, and nothing of the staff of other prisons. An entry whose accounts are
// unknown (a failed sign-in under a name no account has, an action by `relayd console-user`)
// or serve every facility (state-wide staff) belongs to no prison: only an admin of every
// facility ("*") reads it, and such an admin reads every entry.
//
// The filter runs on the server before the limit, reading back through the log past other
// facilities' entries, so a busy facility cannot push a quiet one's entries off its admin's
// page; Config.AuditScan bounds how far one page reads, and the page then links to the older
// entries.

// auditScope decides which entries one reader sees.
type auditScope struct {
	u        Account
	facility string              // the facility chosen, "" for every one the reader serves
	accounts map[string][]string // username -> the account's facilities
}

// belongs lists the facilities an entry is about ("*" for an account of every facility).
func (s auditScope) belongs(e AuditEntry) []string {
	if e.Facility != "" {
		return []string{e.Facility}
	}
	facs := s.accounts[e.Who]
	if strings.HasPrefix(e.Action, "account.") && e.Target != "" {
		facs = append(slices.Clip(facs), s.accounts[e.Target]...)
	}
	return facs
}

// keep reports whether the reader sees e: an entry of a facility they serve, and of the one
// chosen if they chose one.
func (s auditScope) keep(e AuditEntry) bool {
	facs := s.belongs(e)
	if s.facility != "" {
		// The chosen facility's own entries; "*" is every facility's staff, none's own.
		return slices.Contains(facs, s.facility)
	}
	return s.u.Serves(AllFacilities) || slices.ContainsFunc(facs, s.u.Serves)
}

func (c *Console) auditPage(w http.ResponseWriter, req *http.Request, u who) {
	facs, err := c.facilities(u)
	if err != nil {
		c.fail(w, req, u, err)
		return
	}
	q := req.URL.Query()
	fac := q.Get("facility")
	data := map[string]any{"Facilities": facs, "Facility": fac}
	page := pageData{Title: "Audit log", Current: "audit", Data: data}
	if fac != "" && !u.Serves(fac) {
		page.Error = errScope.Error()
		c.render(w, req, http.StatusForbidden, "audit", u, page)
		return
	}
	var before uint64
	if v := q.Get("before"); v != "" {
		if before, err = strconv.ParseUint(v, 10, 64); err != nil || before == 0 {
			page.Error = fmt.Sprintf("before %q is not an entry number", v)
			c.render(w, req, http.StatusBadRequest, "audit", u, page)
			return
		}
	}
	accounts, err := c.store.Accounts()
	if err != nil {
		c.fail(w, req, u, err)
		return
	}
	scope := auditScope{u: u.Account, facility: fac, accounts: make(map[string][]string, len(accounts))}
	for _, a := range accounts {
		scope.accounts[a.Username] = a.Facilities
	}
	log, err := c.store.AuditLogWhere(before, auditLimit, c.cfg.AuditScan, scope.keep)
	if err != nil {
		c.fail(w, req, u, err)
		return
	}
	data["Entries"], data["Scanned"], data["Stopped"] = log.Entries, log.Scanned, log.Next != 0 && len(log.Entries) < auditLimit
	if log.Next != 0 {
		older := url.Values{"before": {strconv.FormatUint(log.Next, 10)}}
		if fac != "" {
			older.Set("facility", fac)
		}
		data["Older"] = Prefix + "audit?" + older.Encode()
	}
	c.render(w, req, http.StatusOK, "audit", u, page)
}
