package kiosk

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/google/uuid"
	bolt "go.etcd.io/bbolt"

	"github.com/tether-kiosk/tether/kiosk/vocab"
)

// The media and education library on the terminal (docs/PROTOCOL.md, "Library"):
//   - the catalog, as the relay publishes it (catalog_item, catalog_withdrawn), in bCatalog;
//   - what each inmate owns (bOwned), bought here (Buy), elsewhere (a remote_charge with an
//     item_id), or added free; an owned item keeps the catalog entry it was bought under, so
//     it stays playable after a withdrawal;
//   - the minutes each inmate spent in the library today (bLibraryUse), here and, as the relay
//     tells, on other terminals, against the policy's library_minutes_per_day.
// The media themselves are content (kiosk/content), kept by the sync layer: a tablet retains
// what its person owns, pinned, under vocab.OwnedHolder; a kiosk fetches on demand.

// Library buckets (schema 5).
const (
	bCatalog    = "catalog"     // item id -> vocab.CatalogItem
	bOwned      = "owned"       // inmate id + "/" + item id -> OwnedItem
	bLibraryUse = "library_use" // inmate id + "/" + day (YYYY-MM-DD, policy zone) -> minutes begun here (u64); + "/" + terminal id -> minutes begun there, as the relay said
)

// migrate4to5 brings in the library's buckets; nothing before schema 5 was published or bought.
func migrate4to5(tx *bolt.Tx) error {
	for _, name := range []string{bCatalog, bOwned, bLibraryUse} {
		if _, err := tx.CreateBucketIfNotExists([]byte(name)); err != nil {
			return fmt.Errorf("create bucket %s: %w", name, err)
		}
	}
	return nil
}

// Library downlink kinds.
const (
	DownCatalogItem      = "catalog_item"      // vocab.CatalogItem
	DownCatalogWithdrawn = "catalog_withdrawn" // vocab.CatalogWithdrawn
)

// CatalogItem is one item of the library (vocab).
type CatalogItem = vocab.CatalogItem

// OwnedItem is an item an inmate owns.
type OwnedItem struct {
	PurchaseID string      `json:"purchase_id"`
	InmateID   string      `json:"inmate_id"`
	Item       CatalogItem `json:"item"`
	Cents      Cents       `json:"cents"` // 0: a free item
	At         time.Time   `json:"at"`
	// Pending: bought here and not yet acknowledged by the relay, which serves an owner's
	// tablet the media only once it holds the purchase.
	Pending bool `json:"pending,omitempty"`
}

// Catalog lists the library's items in force, by kind then title.
func (t *Terminal) Catalog() ([]CatalogItem, error) {
	var out []CatalogItem
	err := t.store.view(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte(bCatalog)).ForEach(func(k, v []byte) error {
			var it CatalogItem
			if err := json.Unmarshal(v, &it); err != nil {
				return &Error{Kind: KindCorrupt, Op: "read catalog", Err: fmt.Errorf("item %q: %w", k, err)}
			}
			out = append(out, it)
			return nil
		})
	})
	sort.Slice(out, func(i, j int) bool {
		if out[i].Kind != out[j].Kind {
			return out[i].Kind < out[j].Kind
		}
		return out[i].Title < out[j].Title
	})
	return out, err
}

// applyCatalogItemTx stores an item the relay published (again), after the shared checks.
func applyCatalogItemTx(tx *bolt.Tx, it CatalogItem) error {
	if err := vocab.ValidateCatalogItem(it); err != nil {
		return err
	}
	return putJSON(tx, bCatalog, it.ID, it)
}

// applyCatalogWithdrawnTx takes an item out of the catalog; those who own it keep it.
func applyCatalogWithdrawnTx(tx *bolt.Tx, w vocab.CatalogWithdrawn) error {
	if w.ID == "" {
		return errInvalid("apply catalog withdrawal", "id is missing")
	}
	return tx.Bucket([]byte(bCatalog)).Delete([]byte(w.ID))
}

// Buy makes the inmate an owner of catalog item itemID, in one transaction. A priced item is
// charged here and now (a Charge under vocab.PurchaseRecordID, queued for the relay, counted
// against the offline spend cap until the relay acknowledges it), so it works offline; it is
// refused with ReasonInsufficientBalance or ReasonOfflineLimit when the inmate cannot pay,
// ReasonAlreadyOwned, ReasonNotInCatalog, ReasonNeedsFunds in a free session. A free item is
// owned without a charge and tells the relay nothing. It needs the inmate's own session.
func (t *Terminal) Buy(inmateID, itemID string) (OwnedItem, error) {
	const op = "buy"
	if err := t.requireSession(op, inmateID); err != nil {
		return OwnedItem{}, err
	}
	p := t.Policy()
	now := t.clock.Now().UTC()
	pid, err := uuid.NewV7()
	if err != nil {
		return OwnedItem{}, &Error{Kind: KindInternal, Op: op, Err: err}
	}
	o := OwnedItem{PurchaseID: pid.String(), InmateID: inmateID, At: now}
	err = t.store.update(op, func(tx *bolt.Tx) error {
		if _, err := getInmateTx(tx, op, inmateID); err != nil {
			return err
		}
		found, err := getJSON(tx, bCatalog, itemID, &o.Item)
		if err != nil {
			return err
		}
		if !found {
			return errRefused(op, vocab.ReasonNotInCatalog, time.Time{})
		}
		if tx.Bucket([]byte(bOwned)).Get([]byte(inmateID+"/"+itemID)) != nil {
			return errRefused(op, vocab.ReasonAlreadyOwned, time.Time{})
		}
		o.Cents = o.Item.PriceCents
		o.Pending = o.Cents > 0
		if o.Cents > 0 {
			if t.freeSession() {
				return errRefused(op, ReasonNeedsFunds, time.Time{})
			}
			if err := chargePurchaseTx(tx, now, p, o); err != nil {
				return err
			}
		}
		return putJSON(tx, bOwned, inmateID+"/"+itemID, o)
	})
	if err != nil {
		return OwnedItem{}, err
	}
	t.emit(Event{Kind: EventChanged, InmateID: inmateID, At: now})
	return o, nil
}

// chargePurchaseTx charges purchase o as stampTx charges a stamp.
func chargePurchaseTx(tx *bolt.Tx, now time.Time, p Policy, o OwnedItem) error {
	const op = "buy"
	acc, err := loadAccountTx(tx, o.InmateID)
	if err != nil {
		return err
	}
	if acc.Balance < o.Cents {
		return &Error{Kind: KindRefused, Op: op, Reason: ReasonInsufficientBalance,
			Err: fmt.Errorf("%q costs %s and the balance is %s", o.Item.Title, o.Cents, acc.Balance)}
	}
	if acc.Unsynced+o.Cents > p.OfflineSpendCap {
		return &Error{Kind: KindRefused, Op: op, Reason: ReasonOfflineLimit,
			Err: fmt.Errorf("%q costs %s and %s of the offline limit %s is spent", o.Item.Title, o.Cents, acc.Unsynced, p.OfflineSpendCap)}
	}
	key := vocab.PurchaseRecordID(o.PurchaseID)
	c := Charge{RecordID: key, InmateID: o.InmateID, Cents: o.Cents, At: now, ItemID: o.Item.ID}
	if err := putJSON(tx, bCharges, key, c); err != nil {
		return err
	}
	if _, err := enqueue(tx, now, ItemCharge, c); err != nil {
		return err
	}
	acc.Balance -= o.Cents
	acc.Unsynced += o.Cents
	return putJSON(tx, bAccounts, acc.InmateID, acc)
}

// purchaseRefusedTx gives back a purchase whose charge the relay refused for good (an item it
// does not know, withdrawn, at another price, or owned already): the relay never took the
// money. The ownership goes with it. Written once.
func purchaseRefusedTx(tx *bolt.Tx, now time.Time, c Charge) error {
	if tx.Bucket([]byte(bCredits)).Get([]byte(c.RecordID)) != nil {
		return nil
	}
	cr := Credit{RecordID: c.RecordID, InmateID: c.InmateID, Cents: c.Cents, Reason: vocab.CreditPurchaseRefused,
		At: now.UTC(), ItemID: c.ItemID}
	if err := putJSON(tx, bCredits, cr.RecordID, cr); err != nil {
		return err
	}
	acc, err := loadAccountTx(tx, c.InmateID)
	if err != nil {
		return err
	}
	acc.Balance += c.Cents
	if err := putJSON(tx, bAccounts, acc.InmateID, acc); err != nil {
		return err
	}
	var o OwnedItem
	key := c.InmateID + "/" + c.ItemID
	if found, err := getJSON(tx, bOwned, key, &o); err != nil || !found || o.PurchaseID != vocab.PurchaseID(c.RecordID) {
		return err
	}
	return tx.Bucket([]byte(bOwned)).Delete([]byte(key))
}

// purchaseSyncedTx marks a purchase the relay acknowledged as no longer pending.
func purchaseSyncedTx(tx *bolt.Tx, recordID, inmateID, itemID string) error {
	var o OwnedItem
	key := inmateID + "/" + itemID
	if found, err := getJSON(tx, bOwned, key, &o); err != nil || !found || !o.Pending || o.PurchaseID != vocab.PurchaseID(recordID) {
		return err
	}
	o.Pending = false
	return putJSON(tx, bOwned, key, o)
}

// ownRemotePurchaseTx records a purchase the inmate made on another terminal (a remote charge
// with an item id): the item is theirs here too.
func ownRemotePurchaseTx(tx *bolt.Tx, c Charge) error {
	key := c.InmateID + "/" + c.ItemID
	if tx.Bucket([]byte(bOwned)).Get([]byte(key)) != nil {
		return nil
	}
	o := OwnedItem{PurchaseID: vocab.PurchaseID(c.RecordID), InmateID: c.InmateID, Cents: c.Cents, At: c.At.UTC(),
		Item: CatalogItem{ID: c.ItemID}}
	if _, err := getJSON(tx, bCatalog, c.ItemID, &o.Item); err != nil {
		return err
	}
	return putJSON(tx, bOwned, key, o)
}

// Owned lists what an inmate owns, newest first. Each item is as it was bought (or, bought
// elsewhere, as the catalog had it when the purchase arrived).
func (t *Terminal) Owned(inmateID string) ([]OwnedItem, error) {
	var out []OwnedItem
	err := t.store.view(func(tx *bolt.Tx) error {
		var err error
		out, err = ownedTx(tx, inmateID+"/")
		return err
	})
	sort.Slice(out, func(i, j int) bool { return out[i].At.After(out[j].At) })
	return out, err
}

// AllOwned lists what every inmate of this terminal owns: a tablet retains their media.
func (t *Terminal) AllOwned() ([]OwnedItem, error) {
	var out []OwnedItem
	err := t.store.view(func(tx *bolt.Tx) error {
		var err error
		out, err = ownedTx(tx, "")
		return err
	})
	return out, err
}

func ownedTx(tx *bolt.Tx, prefix string) ([]OwnedItem, error) {
	var out []OwnedItem
	c := tx.Bucket([]byte(bOwned)).Cursor()
	for k, v := c.Seek([]byte(prefix)); k != nil && strings.HasPrefix(string(k), prefix); k, v = c.Next() {
		var o OwnedItem
		if err := json.Unmarshal(v, &o); err != nil {
			return nil, &Error{Kind: KindCorrupt, Op: "read owned items", Err: fmt.Errorf("%q: %w", k, err)}
		}
		out = append(out, o)
	}
	return out, nil
}

// UseLibraryMinute counts one more begun minute of the inmate in the library today (the
// policy's day, by its timezone and the terminal's clock) and says how many are left (-1: no
// limit). The screens call it when the inmate enters the library and at each minute begun
// there; it is refused with ReasonLibraryTimeUsed (Until: the next day) once the policy's
// library_minutes_per_day are used. It needs the inmate's own session.
//
// The allowance is the person's, not the terminal's: the minutes counted are this terminal's
// own and those the relay said the inmate began on other terminals today (library_use
// downlink). Each minute begun here is told to the relay (ItemLibraryUse, this terminal's
// count so far), which tells the inmate's other terminals. Offline, a terminal goes by what it
// last heard plus its own minutes: an inmate can overrun the allowance by at most what one
// terminal cut off from the relay lets them use unseen.
func (t *Terminal) UseLibraryMinute(inmateID string) (left int, err error) {
	const op = "use library"
	if err := t.requireSession(op, inmateID); err != nil {
		return 0, err
	}
	p := t.Policy()
	if p.LibraryMinutesPerDay <= 0 {
		return -1, nil
	}
	now := t.clock.Now()
	day, next := libraryDay(p, now)
	err = t.store.update(op, func(tx *bolt.Tx) error {
		// Earlier days of this inmate are gone: a day's count is all the limit needs.
		if err := pruneLibraryUseTx(tx, inmateID, func(d string) bool { return d != day }); err != nil {
			return err
		}
		own, others := libraryUseTx(tx, inmateID, day)
		used := own + others
		if used >= p.LibraryMinutesPerDay {
			return &Error{Kind: KindRefused, Op: op, Reason: vocab.ReasonLibraryTimeUsed, Until: next,
				Err: fmt.Errorf("%d of %d library minutes used today", used, p.LibraryMinutesPerDay)}
		}
		left = p.LibraryMinutesPerDay - used - 1
		own++
		if err := tx.Bucket([]byte(bLibraryUse)).Put([]byte(inmateID+"/"+day), u64(uint64(own))); err != nil {
			return err
		}
		_, err := enqueue(tx, now.UTC(), ItemLibraryUse, vocab.LibraryUse{InmateID: inmateID, Day: day, Minutes: own, At: now.UTC()})
		return err
	})
	return left, err
}

// LibraryMinutesLeft says how many library minutes the inmate has left today (-1: no limit),
// here and elsewhere as far as this terminal knows.
func (t *Terminal) LibraryMinutesLeft(inmateID string) (int, error) {
	p := t.Policy()
	if p.LibraryMinutesPerDay <= 0 {
		return -1, nil
	}
	day, _ := libraryDay(p, t.clock.Now())
	used := 0
	err := t.store.view(func(tx *bolt.Tx) error {
		own, others := libraryUseTx(tx, inmateID, day)
		used = own + others
		return nil
	})
	return max(p.LibraryMinutesPerDay-used, 0), err
}

// libraryUseTx reads the inmate's library minutes of day: begun on this terminal (key
// inmate/day) and on the others the relay told of (keys inmate/day/terminal).
func libraryUseTx(tx *bolt.Tx, inmateID, day string) (own, others int) {
	prefix := inmateID + "/" + day
	c := tx.Bucket([]byte(bLibraryUse)).Cursor()
	for k, v := c.Seek([]byte(prefix)); k != nil && strings.HasPrefix(string(k), prefix); k, v = c.Next() {
		switch rest := string(k[len(prefix):]); {
		case rest == "":
			own = int(readU64(v))
		case strings.HasPrefix(rest, "/") && !strings.Contains(rest[1:], "/"):
			others += int(readU64(v))
		}
	}
	return own, others
}

// pruneLibraryUseTx deletes the inmate's library counts of the days drop says.
func pruneLibraryUseTx(tx *bolt.Tx, inmateID string, drop func(day string) bool) error {
	b := tx.Bucket([]byte(bLibraryUse))
	prefix := inmateID + "/"
	var old [][]byte
	c := b.Cursor()
	for k, _ := c.Seek([]byte(prefix)); k != nil && strings.HasPrefix(string(k), prefix); k, _ = c.Next() {
		day, _, _ := strings.Cut(string(k[len(prefix):]), "/")
		if drop(day) {
			old = append(old, append([]byte(nil), k...))
		}
	}
	for _, k := range old {
		if err := b.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// applyLibraryUseTx keeps what the relay said another terminal counted for the inmate on a
// day. Counts only grow (the larger stands), so a replayed or reordered record changes
// nothing; records of days before it are dropped.
func applyLibraryUseTx(tx *bolt.Tx, u vocab.LibraryUse) error {
	if err := vocab.ValidateLibraryUse(u); err != nil {
		return err
	}
	if u.TerminalID == "" {
		return errInvalid("apply library use", "terminal_id is missing")
	}
	if err := pruneLibraryUseTx(tx, u.InmateID, func(d string) bool { return d < u.Day }); err != nil {
		return err
	}
	b := tx.Bucket([]byte(bLibraryUse))
	key := []byte(u.InmateID + "/" + u.Day + "/" + u.TerminalID)
	if int(readU64(b.Get(key))) >= u.Minutes {
		return nil
	}
	return b.Put(key, u64(uint64(u.Minutes)))
}

// libraryDay names the policy's day at now and when the next one starts.
func libraryDay(p Policy, now time.Time) (string, time.Time) {
	local := now.In(p.Location())
	start := time.Date(local.Year(), local.Month(), local.Day(), 0, 0, 0, 0, local.Location())
	return start.Format("2006-01-02"), start.AddDate(0, 0, 1)
}

// SubmitQuiz queues an attempt at quiz quizID of course courseID: one chosen choice per
// question. The relay grades it against its own key and, for a pass the policy rewards,
// grants a credit once per inmate and quiz; it comes back as a remote credit. Learning is
// free: nothing is charged. It needs the inmate's own session.
func (t *Terminal) SubmitQuiz(inmateID, courseID, quizID string, answers []int) (vocab.QuizAttempt, error) {
	const op = "submit quiz"
	if err := t.requireSession(op, inmateID); err != nil {
		return vocab.QuizAttempt{}, err
	}
	id, err := uuid.NewV7()
	if err != nil {
		return vocab.QuizAttempt{}, &Error{Kind: KindInternal, Op: op, Err: err}
	}
	now := t.clock.Now().UTC()
	a := vocab.QuizAttempt{ID: id.String(), InmateID: inmateID, CourseID: courseID, QuizID: quizID, Answers: answers, At: now}
	err = t.store.update(op, func(tx *bolt.Tx) error {
		var course CatalogItem
		found, err := getJSON(tx, bCatalog, courseID, &course)
		if err != nil {
			return err
		}
		q, ok := course.FindQuiz(quizID)
		if !found || !ok {
			return errRefused(op, vocab.ReasonNotInCatalog, time.Time{})
		}
		if len(answers) != len(q.Questions) {
			return errInvalid(op, "%d answers for %d questions", len(answers), len(q.Questions))
		}
		for i, a := range answers {
			if a < 0 || a >= len(q.Questions[i].Choices) {
				return errInvalid(op, "answer %d is choice %d of %d", i+1, a+1, len(q.Questions[i].Choices))
			}
		}
		if _, err := enqueue(tx, now, ItemQuizAttempt, a); err != nil {
			return err
		}
		return putQuizSentTx(tx, a)
	})
	if err != nil {
		return vocab.QuizAttempt{}, err
	}
	return a, nil
}

// readU64 reads a big-endian counter (0 if absent or malformed).
func readU64(b []byte) uint64 {
	if len(b) != 8 {
		return 0
	}
	return uint64(b[0])<<56 | uint64(b[1])<<48 | uint64(b[2])<<40 | uint64(b[3])<<32 |
		uint64(b[4])<<24 | uint64(b[5])<<16 | uint64(b[6])<<8 | uint64(b[7])
}
