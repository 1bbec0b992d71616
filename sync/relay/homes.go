package relay

import (
	"bytes"
	"context"
	"encoding/hex"
	"hash/fnv"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/coder/websocket"

	"github.com/tether-kiosk/tether/kiosk/clock"
	"github.com/tether-kiosk/tether/sync/relay/kv"
	"github.com/tether-kiosk/tether/sync/wire"
)

// Facility homes (docs/SCALE.md "Facility homes"). Gateways of one store may each serve any
// terminal, but a facility's terminals write the same keys (its downlink counter and log, its
// inmates' accounts), so a facility split over two gateways makes their group commits
// conflict and run again: measured, 0.4-1.4 conflicts a commit and under half the throughput
// of the same load with each facility on one gateway (BENCHMARKS.md, "Facility homes"). So
// each facility has a home: of the
// relay's gateways (Config.Gateways) that are live, the one that ranks highest for it by
// rendezvous hashing. Every gateway works the home out alone, from the same list and what it
// heard, and needs no record of it: a terminal that can follow a redirect (hello.redirects)
// is sent to its facility's home at its auth, before anything is claimed or written; one a
// gateway keeps although its home is elsewhere (it followed a redirect already, or its
// gateway is not known to it) is served all the same. Correctness never depends on the home:
// every write is a serializable transaction on any gateway, as before. Homes only decide
// where the writes of a facility meet.
//
// A gateway is live while the others hear it: each announces its URL on the store's notifier
// every homeBeat, and one not heard for homeLapse is taken as down, its facilities homed
// among the rest. A gateway that closes says so ("-" and its URL) before it closes its
// connections, so that on a planned restart the terminals it lets go are not sent back to it;
// if that message is lost, the lapse does the same a few seconds later. When it is heard again, new connections go back to it at once, and after
// homeSettle the other gateways close the connections they hold of its facilities, a few
// each beat, so that those terminals come back through it (wire.ReasonMoved).

const (
	homesTopic = "gateways"
	homeBeat   = 2 * time.Second
	homeLapse  = 3 * homeBeat
	homeSettle = 5 * homeBeat
	// homeMovesPerBeat bounds the connections one gateway closes each beat to send them
	// home: a gateway that comes back draws its terminals back over seconds, not in a storm.
	homeMovesPerBeat = 32
	// maxStrangers bounds how many announcing URLs outside this gateway's list it keeps
	// (only to report them): a flood of forged ones costs a few kilobytes, no more.
	maxStrangers = 32
	// maxStrangerURL bounds the URL of a stranger kept: longer ones, and any with a control
	// character, are forged (they are logged and shown to staff) and ignored.
	maxStrangerURL = 512
	// maxUnreleased bounds the owner records whose release failed that a gateway keeps to
	// delete again (about 100 bytes each), and releasesPerBeat how many it deletes in the one
	// transaction of a beat.
	maxUnreleased   = 100_000
	releasesPerBeat = 512
)

// homes is one gateway's view of the relay's gateways: which are live, and so where each
// facility is served. Its zero value (no self) homes every facility here.
type homes struct {
	self   string   // this gateway's URL, one of all ("": homes are off)
	selfID string   // this gateway's owner id (owner.go), hex
	all    []string // every gateway of the relay, Config.Gateways
	listID string   // gatewayListID(all), announced so that gateways can tell their lists differ
	clock  clock.Clock

	mu sync.Mutex
	// last is when each other gateway was last heard and since when without a lapse
	// (the clock's monotonic reading); ids is the owner id each last announced, hex.
	last, since map[string]time.Duration
	ids         map[string]string
	// differ holds, for each gateway of the list heard announcing a list other than this
	// one's, when it was last heard; strangers the same for URLs not in this list at all.
	// Both only feed GatewaysDisagreeing: a gateway with another list computes other homes.
	differ, strangers map[string]time.Duration
}

func newHomes(self string, selfID []byte, all []string, c clock.Clock) *homes {
	return &homes{self: self, selfID: hex.EncodeToString(selfID), all: all, listID: gatewayListID(all), clock: c,
		last: map[string]time.Duration{}, since: map[string]time.Duration{}, ids: map[string]string{},
		differ: map[string]time.Duration{}, strangers: map[string]time.Duration{}}
}

// gatewayListID names a set of gateway URLs: FNV-1a of the sorted, distinct URLs, in hex. The
// order of -gateways is the terminals' order of trying and does not change any home, so it
// does not count.
func gatewayListID(all []string) string {
	urls := slices.Clone(all)
	slices.Sort(urls)
	urls = slices.Compact(urls)
	f := fnv.New64a()
	for _, u := range urls {
		f.Write([]byte(u))
		f.Write([]byte{'\n'})
	}
	return hex.EncodeToString(f.Sum(nil))
}

// announcement is what this gateway says every beat: its URL, its owner id, so that the others
// can tell which gateway an owner record names, and the id of its gateway list, so that they
// can tell it works out homes from another list.
func (h *homes) announcement() []byte { return []byte(h.self + " " + h.selfID + " " + h.listID) }

// ownerGateway is the URL of the live gateway whose owner id is id (the first gatewayIDLen
// bytes of an owner record), if one is.
func (h *homes) ownerGateway(id []byte) (string, bool) {
	if !h.on() {
		return "", false
	}
	want := hex.EncodeToString(id)
	if want == h.selfID {
		return h.self, true
	}
	now := h.clock.Mono()
	h.mu.Lock()
	defer h.mu.Unlock()
	for url, got := range h.ids {
		if got == want && now-h.last[url] <= homeLapse {
			return url, true
		}
	}
	return "", false
}

// disagreeing lists the gateways heard within homeLapse that work out homes from another
// gateway list than this one's: listed here with another list, or not listed here at all.
// Lapsed strangers are forgotten.
func (h *homes) disagreeing() []string {
	if !h.on() {
		return nil
	}
	now := h.clock.Mono()
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for _, m := range []map[string]time.Duration{h.differ, h.strangers} {
		for url, last := range m {
			if now-last > homeLapse {
				delete(m, url)
				continue
			}
			out = append(out, url)
		}
	}
	slices.Sort(out)
	return out
}

// on reports whether this gateway sends terminals to their facilities' homes.
func (h *homes) on() bool { return h != nil && h.self != "" }

// heard takes note of a gateway's announcement: its URL, owner id and list id (a gateway
// before list ids sends none), or "-" and its URL when it closes. Only the relay's own gateways
// count for homes: a message from a URL not in this gateway's list (a gateway configured with
// another list, during a change of it) is only noted as a stranger, for GatewaysDisagreeing.
func (h *homes) heard(msg string) {
	fields := strings.Fields(msg)
	if len(fields) == 0 {
		return
	}
	url, leaving := strings.CutPrefix(fields[0], "-")
	if url == h.self {
		return
	}
	now := h.clock.Mono()
	h.mu.Lock()
	defer h.mu.Unlock()
	if !slices.Contains(h.all, url) {
		if len(url) > maxStrangerURL || strings.ContainsFunc(url, unicode.IsControl) {
			return
		}
		if _, known := h.strangers[url]; leaving || !known && len(h.strangers) >= maxStrangers {
			delete(h.strangers, url)
			return
		}
		h.strangers[url] = now
		return
	}
	if leaving {
		delete(h.last, url)
		delete(h.since, url)
		delete(h.ids, url)
		delete(h.differ, url)
		return
	}
	if len(fields) > 2 && fields[2] != h.listID {
		h.differ[url] = now
	} else {
		delete(h.differ, url)
	}
	id := ""
	if len(fields) > 1 {
		id = fields[1]
	}
	h.ids[url] = id
	if last, ok := h.last[url]; !ok || now-last > homeLapse {
		h.since[url] = now
	}
	h.last[url] = now
}

// heardAll reports whether every other gateway of the list has been heard since this one
// started: its view of the live gateways is then as good as a lapse's wait would make it.
func (h *homes) heardAll() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, g := range h.all {
		if _, ok := h.last[g]; g != h.self && !ok {
			return false
		}
	}
	return true
}

// of is the home of facility among the gateways live now (settled: heard without a lapse for
// homeSettle at least), this gateway always among them.
func (h *homes) of(facility string, settled bool) string {
	if !h.on() {
		return ""
	}
	now := h.clock.Mono()
	h.mu.Lock()
	defer h.mu.Unlock()
	best, bestRank := "", uint64(0)
	for _, g := range h.all {
		if g != h.self {
			last, ok := h.last[g]
			if !ok || now-last > homeLapse || settled && now-h.since[g] < homeSettle {
				continue
			}
		}
		if r := homeRank(facility, g); best == "" || r > bestRank {
			best, bestRank = g, r
		}
	}
	return best
}

// homeRank is gateway's rank for facility (rendezvous hashing): the facility's home is the
// live gateway of highest rank, so a gateway that goes away moves only its own facilities,
// each to the next in its order, and comes back to the same ones.
func homeRank(facility, gateway string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(facility))
	h.Write([]byte{0})
	h.Write([]byte(gateway))
	x := h.Sum64()
	// FNV's high bits barely move between names that differ in their last bytes; a finalizer
	// (splitmix64's) spreads every input bit over the rank.
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// HomeOf is the URL of the gateway that serves facility's terminals, as this gateway sees the
// others now; "" on a relay without homes (one gateway, or no GatewayURL).
func (r *Relay) HomeOf(facility string) string { return r.homes.of(facility, false) }

// GatewaysDisagreeing lists the gateways heard now that work out facility homes from another
// -gateways list than this one's (another set of URLs, or a URL not in this list). Gateways
// that disagree send some facilities' terminals to different gateways: each disagreement costs
// a terminal one more connection and splits its facility's writes, never money or letters,
// but the lists should be made the same (docs/OPERATIONS.md).
func (r *Relay) GatewaysDisagreeing() []string { return r.homes.disagreeing() }

// GatewayURL is this gateway's own URL when facility homes are on, else "".
func (r *Relay) GatewayURL() string {
	if !r.homes.on() {
		return ""
	}
	return r.homes.self
}

// startHomes announces this gateway and listens to the others, on a relay of several gateways
// on a store that carries notifications. Without them every facility is served here.
func (r *Relay) startHomes() error {
	n, ok := r.db.(kv.Notifier)
	if !ok || r.cfg.GatewayURL == "" {
		return nil
	}
	h := newHomes(r.cfg.GatewayURL, r.gateway, r.cfg.Gateways, r.clock)
	unsub, err := n.Subscribe(homesTopic, func(msg []byte) { h.heard(string(msg)) })
	if err != nil {
		return ioErr("open relay", err)
	}
	r.homes, r.unsubHomes = h, unsub
	r.homeBeat()
	return nil
}

// homeBeat announces this gateway, sends home what it holds of other gateways' facilities,
// and arms the next beat; it stops when the relay closes.
func (r *Relay) homeBeat() {
	select {
	case <-r.closed:
		return
	default:
	}
	if err := r.db.(kv.Notifier).Notify(homesTopic, r.homes.announcement()); err != nil {
		r.logf("relay: announce this gateway to the others: %v", err)
	}
	// Off the beat: a store without quorum holds a write for seconds, and the announcement
	// must not wait for it.
	r.homesMu.Lock()
	pending := len(r.unreleased) > 0
	r.homesMu.Unlock()
	if pending && r.releasing.CompareAndSwap(false, true) {
		go func() {
			defer r.releasing.Store(false)
			r.releaseAgain(releasesPerBeat)
		}()
	}
	if r.finishing.CompareAndSwap(false, true) {
		go func() {
			defer r.finishing.Store(false)
			if err := r.finishDue(r.clock.Now(), dueSweepAge); err != nil {
				r.logf("relay: finish the deposits and fan-outs cut off before: %v", err)
			}
		}()
	}
	if n := r.sendHome(homeMovesPerBeat); n > 0 {
		r.metrics.homes.WithLabelValues("moved").Add(float64(n))
		r.logf("relay: %d connections closed to reconnect through their facilities' gateways", n)
	}
	other := r.homes.disagreeing()
	r.metrics.listsDiffer.Set(float64(len(other)))
	r.homesMu.Lock()
	defer r.homesMu.Unlock()
	for _, url := range other {
		if !slices.Contains(r.homesWarned, url) {
			r.logf("relay: gateway %s works out facility homes from another -gateways list than this one's: give every gateway the same list", url)
		}
	}
	r.homesWarned = other
	select {
	case <-r.closed:
	default:
		r.homesTimer = r.clock.AfterFunc(homeBeat, r.homeBeat)
	}
}

// stopHomes ends the beats and the subscription, and tells the other gateways this one is
// going (Close, after r.closed is closed and before the connections are).
func (r *Relay) stopHomes() {
	if r.unsubHomes == nil {
		return
	}
	r.unsubHomes()
	if err := r.db.(kv.Notifier).Notify(homesTopic, []byte("-"+r.homes.self)); err != nil {
		r.logf("relay: tell the other gateways this one is going: %v", err)
	}
	r.homesMu.Lock()
	defer r.homesMu.Unlock()
	if r.homesTimer != nil {
		r.homesTimer.Stop()
	}
}

// sendHome closes up to max connections held here whose facility's settled home is another
// gateway, with wire.ReasonMoved: their terminals reconnect and are redirected there. A
// connection whose terminal cannot follow a redirect, or came here by one, stays.
func (r *Relay) sendHome(max int) int {
	if !r.homes.on() {
		return 0
	}
	// Every beat walks every connection held here (27,500 a gateway in a state of two): in
	// place, not a copy of the list, and each facility's home worked out once.
	var moving []*session
	away := map[string]bool{}
	r.hub.each(func(s *session) bool {
		if !s.movable || s.moved.Load() {
			return true
		}
		elsewhere, known := away[s.facility]
		if !known {
			elsewhere = r.homes.of(s.facility, true) != r.homes.self
			away[s.facility] = elsewhere
		}
		if elsewhere && s.moved.CompareAndSwap(false, true) {
			moving = append(moving, s)
		}
		return len(moving) < max
	})
	for _, s := range moving {
		go s.conn.Close(websocket.StatusGoingAway, wire.ReasonMoved)
	}
	return len(moving)
}

// releaseOwner deletes the terminal's owner record as the connection that wrote it ends, so
// that the other gateways stop showing the terminal as connected (terminalInfo). Only with
// homes, whose announcements name each gateway's owner id; not while the relay closes (it
// announced it is going, so its records name a gateway no longer live).
func (r *Relay) releaseOwner(s *session) {
	if !r.homes.on() || s.claimed == nil || r.stopped() {
		return
	}
	own, err := s.owner()
	if err != nil || own == nil {
		return
	}
	err = r.update("release terminal", func(tx kv.Tx, _ *fanout) error {
		return releaseTx(tx, s.id, own.rec)
	})
	if err != nil && !r.stopped() {
		// Left in the store, the record would show the terminal online through this gateway
		// for as long as the gateway lives, and keep the offline alert from firing for a
		// terminal that lost its power: the beats delete it once the store takes writes.
		r.logf("relay: release terminal %s: %v (deleted again once the store takes writes)", s.id, err)
		r.homesMu.Lock()
		if len(r.unreleased) < maxUnreleased {
			if r.unreleased == nil {
				r.unreleased = map[string][]byte{}
			}
			r.unreleased[s.id] = own.rec
		}
		r.homesMu.Unlock()
	}
}

// releaseTx deletes terminal id's owner record if it is still rec, a connection's claim that
// ended; a newer connection's claim stays.
func releaseTx(tx kv.Tx, id string, rec []byte) error {
	b := tx.Bucket([]byte(bOwners))
	if b == nil || !bytes.Equal(b.Get([]byte(id)), rec) {
		return nil
	}
	return b.Delete([]byte(id))
}

// releaseAgain deletes, in one transaction, up to max of the owner records whose release
// failed; those it could not delete wait for the next beat.
func (r *Relay) releaseAgain(max int) {
	r.homesMu.Lock()
	batch := make(map[string][]byte, min(max, len(r.unreleased)))
	for id, rec := range r.unreleased {
		if len(batch) == max {
			break
		}
		batch[id] = rec
		delete(r.unreleased, id)
	}
	r.homesMu.Unlock()
	if len(batch) == 0 || r.stopped() {
		return
	}
	err := r.update("release terminals again", func(tx kv.Tx, _ *fanout) error {
		for id, rec := range batch {
			if err := releaseTx(tx, id, rec); err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil {
		r.logf("relay: released %d terminals whose release had failed", len(batch))
		return
	}
	r.homesMu.Lock()
	for id, rec := range batch {
		if _, newer := r.unreleased[id]; !newer && len(r.unreleased) < maxUnreleased {
			r.unreleased[id] = rec
		}
	}
	r.homesMu.Unlock()
}

// connectedElsewhere is the URL of the live gateway holding the terminal's connection, read
// from its owner record in tx, when that is another gateway.
func (r *Relay) connectedElsewhere(tx kv.Tx, id string) (string, bool) {
	if !r.homes.on() {
		return "", false
	}
	b := tx.Bucket([]byte(bOwners))
	if b == nil {
		return "", false
	}
	rec := b.Get([]byte(id))
	if len(rec) < gatewayIDLen {
		return "", false
	}
	url, ok := r.homes.ownerGateway(rec[:gatewayIDLen])
	return url, ok && url != r.homes.self
}

// redirect sends the terminal to its facility's home if that is another gateway and the
// terminal follows redirects; it reports whether it did (the connection is then closed).
func (r *Relay) redirect(ctx context.Context, c *websocket.Conn, hello wire.Hello, info TerminalInfo) bool {
	if !r.homes.on() || !hello.Redirects || hello.Redirected {
		return false
	}
	home := r.homes.of(info.FacilityID, false)
	if home == r.homes.self {
		return false
	}
	r.metrics.homes.WithLabelValues("redirected").Inc()
	if err := r.send(ctx, c, wire.Redirect{URL: home}); err != nil {
		return true // the connection is gone either way
	}
	c.Close(websocket.StatusNormalClosure, wire.ReasonRedirect)
	return true
}
