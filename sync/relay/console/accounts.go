package console

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/tether-kiosk/tether/kiosk/pinhash"
	"github.com/tether-kiosk/tether/sync/relay"
	"github.com/tether-kiosk/tether/sync/relay/kv"
)

// Roles a staff account may hold; one account may hold several.
const (
	RoleMailroom   = "mailroom"   // review queue, contacts, department answers, notices
	RoleBusiness   = "business"   // deposits and ledgers
	RoleTechnician = "technician" // terminals, enrollment codes, device health
	RoleAdmin      = "admin"      // accounts, the audit log, policy, notices
	RolePREA       = "prea"       // PREA reports, and nothing else
	RoleLibrary    = "library"    // the media and education library: publish and withdraw items
)

// Roles is every role, in the order the accounts screen lists them.
var roleList = []string{RoleMailroom, RoleBusiness, RoleTechnician, RoleAdmin, RolePREA, RoleLibrary}

// Roles returns every role a staff account may hold.
func Roles() []string { return slices.Clone(roleList) }

// AllFacilities in an account's facilities scopes it to every facility, present and future.
const AllFacilities = "*"

// MinPassword is the shortest password an account may have.
const MinPassword = 10

// Nested buckets inside the relay's staff bucket.
const (
	bAccounts = "accounts" // username -> Account
	bSessions = "sessions" // sha256(session token) hex -> session
	bAudit    = "audit"    // sequence (8 bytes) -> AuditEntry
)

// Account is a staff member's login.
type Account struct {
	Username   string    `json:"username"`
	Name       string    `json:"name"`
	Roles      []string  `json:"roles"`
	Facilities []string  `json:"facilities"`
	Hash       string    `json:"hash"` // argon2id PHC string
	Disabled   bool      `json:"disabled,omitempty"`
	CreatedAt  time.Time `json:"created_at"`
}

// Has reports whether the account holds role.
func (a Account) Has(role string) bool { return slices.Contains(a.Roles, role) }

// Serves reports whether the account may act on facility.
func (a Account) Serves(facility string) bool {
	return slices.Contains(a.Facilities, AllFacilities) || slices.Contains(a.Facilities, facility)
}

type session struct {
	Username  string    `json:"username"`
	CSRF      string    `json:"csrf"`
	CreatedAt time.Time `json:"created_at"`
	LastSeen  time.Time `json:"last_seen"`
}

// AuditEntry is one staff action: who, what, when, on what.
type AuditEntry struct {
	Seq      uint64    `json:"seq"`
	At       time.Time `json:"at"`
	Who      string    `json:"who"`
	Action   string    `json:"action"`
	Target   string    `json:"target,omitempty"`
	Facility string    `json:"facility,omitempty"`
	Detail   string    `json:"detail,omitempty"`
}

// NewAccount is what AddAccount needs; Password is hashed and never stored.
type NewAccount struct {
	Username   string
	Name       string
	Password   string
	Roles      []string
	Facilities []string
}

// String never shows the password.
func (n NewAccount) String() string { return "account " + n.Username }

// ErrExists is AddAccount with a username already taken.
var ErrExists = errors.New("account already exists")

func validUsername(u string) error {
	if len(u) < 2 || len(u) > 64 {
		return fmt.Errorf("username: must be 2 to 64 characters")
	}
	for _, c := range u {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c == '_') {
			return fmt.Errorf("username: only a-z, 0-9, '.', '-' and '_' (got %q)", c)
		}
	}
	return nil
}

func (n NewAccount) check() error {
	if err := validUsername(n.Username); err != nil {
		return err
	}
	if strings.TrimSpace(n.Name) == "" || utf8.RuneCountInString(n.Name) > 100 {
		return fmt.Errorf("name: required, at most 100 characters")
	}
	if utf8.RuneCountInString(n.Password) < MinPassword || len(n.Password) > 200 {
		return fmt.Errorf("password: must be %d to 200 characters", MinPassword)
	}
	if len(n.Roles) == 0 {
		return fmt.Errorf("roles: at least one of %s", strings.Join(roleList, ", "))
	}
	for _, r := range n.Roles {
		if !slices.Contains(roleList, r) {
			return fmt.Errorf("roles: %q is not one of %s", r, strings.Join(roleList, ", "))
		}
	}
	if len(n.Facilities) == 0 {
		return fmt.Errorf("facilities: at least one facility id, or %q for all", AllFacilities)
	}
	for _, f := range n.Facilities {
		if f == "" || len(f) > 64 || strings.ContainsAny(f, " /<>\"'&") {
			return fmt.Errorf("facilities: %q is not a facility id", f)
		}
	}
	return nil
}

// Store is the console's accounts, sessions and audit log, in the relay's store.
type Store struct {
	r      *relay.Relay
	params pinhash.Params
}

// OpenStore makes the console's buckets in r's store if missing. params are the argon2id costs
// of new passwords (zero: pinhash.DefaultParams).
func OpenStore(r *relay.Relay, params pinhash.Params) (*Store, error) {
	if params == (pinhash.Params{}) {
		params = pinhash.DefaultParams()
	}
	err := r.StaffUpdate(func(b kv.Bucket) error {
		for _, name := range []string{bAccounts, bSessions, bAudit} {
			if _, err := b.CreateBucketIfNotExists([]byte(name)); err != nil {
				return fmt.Errorf("create console bucket %s: %w", name, err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("open console store: %w", err)
	}
	return &Store{r: r, params: params}, nil
}

// AddAccount creates a staff account; who is the admin doing it (for the audit log).
func (s *Store) AddAccount(now time.Time, who string, n NewAccount) (Account, error) {
	n.Username = strings.ToLower(strings.TrimSpace(n.Username))
	n.Name = strings.TrimSpace(n.Name)
	if err := n.check(); err != nil {
		return Account{}, fmt.Errorf("add account: %w", err)
	}
	hash, err := pinhash.HashSecretWith(n.Password, s.params)
	if err != nil {
		return Account{}, fmt.Errorf("add account %s: %w", n.Username, err)
	}
	roles := slices.Clone(n.Roles)
	sort.Strings(roles)
	a := Account{Username: n.Username, Name: n.Name, Roles: slices.Compact(roles), Facilities: slices.Clone(n.Facilities), Hash: hash, CreatedAt: now.UTC()}
	err = s.r.StaffUpdate(func(b kv.Bucket) error {
		acc := b.Bucket([]byte(bAccounts))
		if acc.Get([]byte(a.Username)) != nil {
			return fmt.Errorf("add account %s: %w", a.Username, ErrExists)
		}
		if err := putJSON(acc, a.Username, a); err != nil {
			return err
		}
		return appendAudit(b, AuditEntry{At: now.UTC(), Who: who, Action: "account.add", Target: a.Username,
			Detail: "roles " + strings.Join(a.Roles, ",") + "; facilities " + strings.Join(a.Facilities, ",")})
	})
	return a, err
}

// SetDisabled turns an account off (its sessions end) or on again.
func (s *Store) SetDisabled(now time.Time, who, username string, disabled bool) error {
	return s.r.StaffUpdate(func(b kv.Bucket) error {
		var a Account
		acc := b.Bucket([]byte(bAccounts))
		if ok, err := getJSON(acc, username, &a); err != nil {
			return err
		} else if !ok {
			return fmt.Errorf("account %q: not found", username)
		}
		a.Disabled = disabled
		if err := putJSON(acc, username, a); err != nil {
			return err
		}
		if disabled {
			if err := dropSessions(b, username); err != nil {
				return err
			}
		}
		action := "account.enable"
		if disabled {
			action = "account.disable"
		}
		return appendAudit(b, AuditEntry{At: now.UTC(), Who: who, Action: action, Target: username})
	})
}

func dropSessions(b kv.Bucket, username string) error {
	sb := b.Bucket([]byte(bSessions))
	var drop [][]byte
	err := sb.ForEach(func(k, v []byte) error {
		var se session
		if json.Unmarshal(v, &se) == nil && se.Username == username {
			drop = append(drop, slices.Clone(k))
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, k := range drop {
		if err := sb.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// Accounts lists every account, by username.
func (s *Store) Accounts() ([]Account, error) {
	var out []Account
	err := s.r.StaffView(func(b kv.Bucket) error {
		return b.Bucket([]byte(bAccounts)).ForEach(func(k, v []byte) error {
			var a Account
			if err := json.Unmarshal(v, &a); err != nil {
				return fmt.Errorf("account %q: %w", k, err)
			}
			out = append(out, a)
			return nil
		})
	})
	return out, err
}

// Account finds one account.
func (s *Store) Account(username string) (Account, bool, error) {
	var a Account
	var ok bool
	err := s.r.StaffView(func(b kv.Bucket) error {
		var err error
		ok, err = getJSON(b.Bucket([]byte(bAccounts)), username, &a)
		return err
	})
	return a, ok, err
}

// Check verifies a password; a missing or disabled account fails like a wrong password, after
// the same hashing work, so timing does not tell which usernames exist.
func (s *Store) Check(username, password string) (Account, bool) {
	a, ok, err := s.Account(strings.ToLower(strings.TrimSpace(username)))
	if err != nil || !ok || a.Disabled {
		// The same costs as a real hash, so an unknown name takes as long.
		_, _ = pinhash.HashSecretWith(password, s.params)
		return Account{}, false
	}
	return a, pinhash.Verify(a.Hash, password)
}

func newToken() (string, error) {
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", fmt.Errorf("read random token: %w", err)
	}
	return hex.EncodeToString(raw[:]), nil
}

// tokenKey is how a session is stored: hashed, so a copy of the file holds no live cookie.
func tokenKey(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// newSession stores a session for username and returns its cookie token. Sessions past idle
// or absolute are deleted on the way, so the bucket holds only live ones and those of the
// last few minutes.
func (s *Store) newSession(now time.Time, username string, idle, absolute time.Duration) (string, session, error) {
	token, err := newToken()
	if err != nil {
		return "", session{}, err
	}
	csrf, err := newToken()
	if err != nil {
		return "", session{}, err
	}
	se := session{Username: username, CSRF: csrf, CreatedAt: now.UTC(), LastSeen: now.UTC()}
	err = s.r.StaffUpdate(func(b kv.Bucket) error {
		sb := b.Bucket([]byte(bSessions))
		var expired [][]byte
		if err := sb.ForEach(func(k, v []byte) error {
			var old session
			if json.Unmarshal(v, &old) != nil || now.Sub(old.LastSeen) > idle || now.Sub(old.CreatedAt) > absolute {
				expired = append(expired, slices.Clone(k))
			}
			return nil
		}); err != nil {
			return err
		}
		for _, k := range expired {
			if err := sb.Delete(k); err != nil {
				return err
			}
		}
		if err := putJSON(sb, tokenKey(token), se); err != nil {
			return err
		}
		return appendAudit(b, AuditEntry{At: now.UTC(), Who: username, Action: "login"})
	})
	return token, se, err
}

// sessionCount is how many sessions the store holds (for tests of the pruning).
func (s *Store) sessionCount() int {
	n := 0
	_ = s.r.StaffView(func(b kv.Bucket) error {
		n = b.Bucket([]byte(bSessions)).KeyN()
		return nil
	})
	return n
}

// session finds the live session of a cookie token; an expired one is gone.
func (s *Store) session(now time.Time, token string, idle, absolute time.Duration) (session, Account, bool, error) {
	var se session
	var a Account
	var ok bool
	err := s.r.StaffView(func(b kv.Bucket) error {
		found, err := getJSON(b.Bucket([]byte(bSessions)), tokenKey(token), &se)
		if err != nil || !found {
			return err
		}
		if now.Sub(se.LastSeen) > idle || now.Sub(se.CreatedAt) > absolute {
			return nil
		}
		found, err = getJSON(b.Bucket([]byte(bAccounts)), se.Username, &a)
		ok = err == nil && found && !a.Disabled
		return err
	})
	return se, a, ok, err
}

// touch moves a session's idle deadline; it writes at most once a minute per session.
func (s *Store) touch(now time.Time, token string, se session) error {
	if now.Sub(se.LastSeen) < time.Minute {
		return nil
	}
	se.LastSeen = now.UTC()
	return s.r.StaffUpdate(func(b kv.Bucket) error {
		sb := b.Bucket([]byte(bSessions))
		if sb.Get([]byte(tokenKey(token))) == nil {
			return nil // logged out meanwhile
		}
		return putJSON(sb, tokenKey(token), se)
	})
}

// endSession logs out.
func (s *Store) endSession(now time.Time, token, username string) error {
	return s.r.StaffUpdate(func(b kv.Bucket) error {
		if err := b.Bucket([]byte(bSessions)).Delete([]byte(tokenKey(token))); err != nil {
			return err
		}
		return appendAudit(b, AuditEntry{At: now.UTC(), Who: username, Action: "logout"})
	})
}

// Audit appends one entry to the staff audit log.
func (s *Store) Audit(e AuditEntry) error {
	return s.r.StaffUpdate(func(b kv.Bucket) error { return appendAudit(b, e) })
}

// AuditLog lists the newest limit entries, newest first.
func (s *Store) AuditLog(limit int) ([]AuditEntry, error) {
	p, err := s.AuditLogWhere(0, limit, limit, nil)
	return p.Entries, err
}

// AuditPage is one page of the audit log read by AuditLogWhere.
type AuditPage struct {
	Entries []AuditEntry // newest first
	// Scanned is how many entries were read to find Entries.
	Scanned int
	// Next continues the search: the entries older than it were not read (0: the log was read
	// to its first entry).
	Next uint64
}

// AuditLogWhere lists, newest first, up to limit entries that keep accepts (nil: every
// entry) among those older than before (0: from the newest). It reads at most scan entries,
// so one page costs the same however rare the kept entries are; Next says where to go on.
func (s *Store) AuditLogWhere(before uint64, limit, scan int, keep func(AuditEntry) bool) (AuditPage, error) {
	var p AuditPage
	err := s.r.StaffView(func(b kv.Bucket) error {
		p = AuditPage{} // a View may run again
		c := b.Bucket([]byte(bAudit)).Cursor()
		k, v := c.Last()
		if before != 0 {
			// Seek lands on before or the first key after it (or past the end); the entry
			// before that is the newest one older than before.
			c.Seek(auditKey(before))
			k, v = c.Prev()
		}
		for ; k != nil; k, v = c.Prev() {
			if len(p.Entries) == limit || p.Scanned == scan {
				p.Next = binary.BigEndian.Uint64(k) + 1 // k is the newest entry not read
				return nil
			}
			p.Scanned++
			var e AuditEntry
			if err := json.Unmarshal(v, &e); err != nil {
				return fmt.Errorf("audit entry %x: %w", k, err)
			}
			if keep == nil || keep(e) {
				p.Entries = append(p.Entries, e)
			}
		}
		return nil
	})
	if err != nil {
		return AuditPage{}, fmt.Errorf("read the audit log: %w", err)
	}
	return p, nil
}

func auditKey(seq uint64) []byte {
	key := make([]byte, 8)
	binary.BigEndian.PutUint64(key, seq)
	return key
}

func appendAudit(b kv.Bucket, e AuditEntry) error {
	ab := b.Bucket([]byte(bAudit))
	seq, err := ab.NextSequence()
	if err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	e.Seq = seq
	raw, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	return ab.Put(auditKey(seq), raw)
}

func getJSON(b kv.Bucket, key string, v any) (bool, error) {
	raw := b.Get([]byte(key))
	if raw == nil {
		return false, nil
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return true, fmt.Errorf("console record %q: %w", key, err)
	}
	return true, nil
}

func putJSON(b kv.Bucket, key string, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode console record %q: %w", key, err)
	}
	return b.Put([]byte(key), raw)
}
