package client

import (
	"fmt"

	"github.com/tether-kiosk/tether/kiosk/content"
	"github.com/tether-kiosk/tether/kiosk/vocab"
)

// The library's media (docs/PROTOCOL.md, "Library"). A tablet keeps what its person owns:
// every medium of every owned item is retained pinned under vocab.OwnedHolder(purchase id),
// so it is fetched as soon as the relay can be reached and stays there, playable offline, until
// the purchase is given back. A shared kiosk keeps no one's library: it fetches an item's media
// when a person opens it (ViewLibraryItem) and lets them go to its cache when the item is
// closed (CloseLibraryItem); the cache keeps its cap by evicting the least recently used.

// retainOwned makes the tablet's content store hold what its person owns, and lets go of
// purchases given back (a refused purchase). A kiosk retains nothing here. It reports whether
// anything new was retained. Called before each pass of the content fetcher and when woken
// (Engine.FetchContent, which the screens call after a purchase).
func (e *Engine) retainOwned() (bool, error) {
	st := e.cfg.Content
	if st == nil {
		return false, nil
	}
	if _, bound, err := e.term.BoundInmate(); err != nil || !bound {
		return false, err
	}
	owned, err := e.term.AllOwned()
	if err != nil {
		return false, fmt.Errorf("retain owned media: %w", err)
	}
	want := map[content.Claim]bool{}
	retained, pending := false, false
	defer func() { e.ownedPending.Store(pending) }()
	for _, o := range owned {
		if o.Pending {
			// The relay serves an owner's media once it holds the purchase: asked before,
			// it would answer not_yours. The acknowledgement wakes the fetcher (link.acked).
			pending = true
			continue
		}
		holder := vocab.OwnedHolder(o.PurchaseID)
		for _, m := range o.Item.Media() {
			ref, err := content.ParseRef(m.SHA256, m.Manifest, m.Size)
			if err != nil {
				continue // the catalog checks refs: an old record's bad one is skipped, not fatal
			}
			want[content.Claim{Object: ref.Object, Holder: holder}] = true
			holders, _, err := st.Holders(ref.Object)
			if err != nil {
				return false, fmt.Errorf("retain owned media: %w", err)
			}
			if hasHolder(holders, holder) {
				continue // already retained: no write
			}
			if err := st.Retain(ref, holder, true); err != nil {
				return false, fmt.Errorf("retain %s of %s: %w", m.SHA256, o.Item.ID, err)
			}
			retained = true
		}
	}
	claims, err := st.Claims("own:")
	if err != nil {
		return false, fmt.Errorf("retain owned media: %w", err)
	}
	for _, c := range claims {
		if !want[c] {
			if err := st.Release(c.Object, c.Holder); err != nil {
				return false, fmt.Errorf("release %s: %w", c.Holder, err)
			}
		}
	}
	return retained, nil
}

func hasHolder(hs []string, h string) bool {
	for _, x := range hs {
		if x == h {
			return true
		}
	}
	return false
}

// ViewLibraryItem retains an item's media on a shared kiosk while a person has it open, not
// pinned, under vocab.LibraryViewHolder (a "view:" claim: released with the others if the
// kiosk crashes), and wakes the fetcher for what is not held whole. Media already in the
// cache are not fetched again.
func (e *Engine) ViewLibraryItem(it vocab.CatalogItem) error {
	st := e.cfg.Content
	if st == nil {
		return fmt.Errorf("view %s: this terminal keeps no content", it.ID)
	}
	for _, m := range it.Media() {
		ref, err := content.ParseRef(m.SHA256, m.Manifest, m.Size)
		if err != nil {
			return fmt.Errorf("view %s: %w", it.ID, err)
		}
		if err := st.Retain(ref, vocab.LibraryViewHolder(it.ID), false); err != nil {
			return fmt.Errorf("view %s: %w", it.ID, err)
		}
	}
	e.FetchContent()
	return nil
}

// CloseLibraryItem lets go of an item a person closed on a shared kiosk: its media stay in the
// cache (content.Store.Unclaim) until the cap needs the room.
func (e *Engine) CloseLibraryItem(it vocab.CatalogItem) error {
	st := e.cfg.Content
	if st == nil {
		return nil
	}
	for _, m := range it.Media() {
		obj, err := content.ParseHash(m.SHA256)
		if err != nil {
			continue
		}
		if err := st.Unclaim(obj, vocab.LibraryViewHolder(it.ID)); err != nil {
			return fmt.Errorf("close %s: %w", it.ID, err)
		}
	}
	return nil
}
