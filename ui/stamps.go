package ui

import (
	"fyne.io/fyne/v2"

	"github.com/tether-kiosk/tether/kiosk"
	"github.com/tether-kiosk/tether/ui/theme"
)

// Stamps on screen: the Write screen says what a letter costs before Send, a refusal for want
// of money says it was the stamp, and a rejected letter says its stamp was refunded (no vendor
// promises that, so the screen does).

// priceLine is what the letter to peer costs, for the Write screen; nil when the facility
// does not price letters (per minute only) or no recipient is chosen yet.
func (k *Kiosk) priceLine(w words, peer string) fyne.CanvasObject {
	p := k.d.Policy()
	if !p.ChargesStamps() || peer == "" {
		return nil
	}
	if price := k.d.LetterPrice(peer); price > 0 {
		return theme.Text(w.T("write.price", "amount", price.String()), theme.TextSize, theme.Yellow, true)
	}
	return theme.Text(w.T("write.price_free"), theme.TextSize, theme.Green, false)
}

// sendRefusal says why Send was refused: for want of money, that the stamp could not be paid
// (the login refusals speak of a session).
func (k *Kiosk) sendRefusal(w words, peer string, err error) string {
	switch kiosk.ReasonOf(err) {
	case kiosk.ReasonInsufficientBalance:
		return w.T("write.err.stamp_balance", "amount", k.d.LetterPrice(peer).String())
	case kiosk.ReasonOfflineLimit:
		return w.T("write.err.stamp_offline", "amount", k.d.LetterPrice(peer).String())
	}
	return w.refusal(err)
}

// sentLetter is a sent letter with what the Sent list says of its stamp.
type sentLetter struct {
	kiosk.Message
	refund kiosk.Cents // > 0: the stamp was refunded (a rejected letter)
}

// sentLetters reads, off the UI goroutine, which rejected letters of ms had their stamp
// refunded.
func (k *Kiosk) sentLetters(inmateID string, ms []kiosk.Message) []sentLetter {
	out := make([]sentLetter, len(ms))
	for i, m := range ms {
		out[i].Message = m
		if m.State != kiosk.MsgRejected {
			continue
		}
		s, ok, err := k.d.StampOf(inmateID, m.ID)
		if err != nil {
			k.logf("ui: read stamp of a letter: %v", err)
			continue
		}
		if ok && s.Refunded {
			out[i].refund = s.Cents
		}
	}
	return out
}

// refundLine says a rejected letter's stamp was refunded; nil if it was not.
func refundLine(w words, l sentLetter) fyne.CanvasObject {
	if l.refund <= 0 {
		return nil
	}
	return theme.Text(w.T("state.stamp_refunded", "amount", l.refund.String()), theme.TextSize, theme.Green, true)
}
