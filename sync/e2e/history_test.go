package e2e

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/tether-kiosk/tether/internal/testwait"
	"github.com/tether-kiosk/tether/kiosk"
	"github.com/tether-kiosk/tether/sync/wire"
)

// sentHas reports whether inmate's Sent on tm holds a letter with this body, and its state.
func sentHas(tm *terminal, inmate, body string) (bool, string) {
	sent, err := tm.term.Sent(inmate)
	for _, m := range sent {
		if m.Body == body {
			return true, m.State
		}
	}
	return false, fmt.Sprint(len(sent), " letters, err ", err)
}

// dirHolds reports whether any file of a terminal's data directory holds text, free pages too.
func dirHolds(t *testing.T, dir, text string) bool {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		raw, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(raw, []byte(text)) {
			return true
		}
	}
	return false
}

// TestHistoryFollowsThePerson: Ana writes to Medical on kiosk A. The letter appears in Sent on
// her tablet, whole. At kiosk B her session brings the letter into Sent there; she reads
// Medical's answer on kiosk B and it reads as read on her tablet. After she logs out of kiosk
// B, nothing of her letter is left on it, not even in its file.
func TestHistoryFollowsThePerson(t *testing.T) {
	rl := startRelay(t, "")
	rl.seed()
	url := "http://" + rl.addr()
	kA := openTerminal(t, "", kiosk.StoreOptions{})
	kA.enroll(url, rl.code(wire.ModeKiosk, ""))
	kA.start()
	kB := openTerminal(t, "", kiosk.StoreOptions{})
	kB.enroll(url, rl.code(wire.ModeKiosk, ""))
	kB.start()
	tab := openTerminal(t, "", kiosk.StoreOptions{})
	tab.enroll(url, rl.code(wire.ModeTablet, "A1"))
	tab.start()
	kA.waitRoster()
	kB.waitRoster()

	const letter = "Written at kiosk A: my tooth hurts since Sunday"
	kA.login("B1", "1234")
	req, err := kA.term.Send("A1", "dept-medical", "Tooth", letter)
	if err != nil {
		t.Fatal(err)
	}
	if err := kA.term.Logout(); err != nil {
		t.Fatal(err)
	}
	kA.waitSynced()
	testwait.UntilSaw(t, "kiosk A's letter in Sent on Ana's tablet", func() (bool, string) {
		ok, state := sentHas(tab, "A1", letter)
		return ok && state == kiosk.MsgDelivered, state
	})
	if ok, _ := sentHas(kB, "A1", letter); ok {
		t.Fatal("kiosk B holds Ana's letter before she logged in there")
	}

	var answer kiosk.Message
	rl.admin("POST", "/admin/v1/requests/"+req.ID+"/reply",
		map[string]any{"from": "dept-medical", "body": "Sick call Tuesday 9:00"}, &answer)

	kB.login("B1", "1234")
	testwait.UntilSaw(t, "Ana's letter in Sent on kiosk B during her session", func() (bool, string) {
		ok, state := sentHas(kB, "A1", letter)
		return ok && kB.term.HistoryFetched("A1"), state
	})
	testwait.UntilSaw(t, "Medical's answer on kiosk B", func() (bool, string) {
		in, err := kB.term.Inbox("A1")
		return len(in) == 1 && in[0].ID == answer.ID, fmt.Sprint(in, err)
	})
	if err := kB.term.MarkRead("A1", answer.ID); err != nil {
		t.Fatal(err)
	}
	testwait.UntilSaw(t, "the answer read on Ana's tablet", func() (bool, string) {
		in, err := tab.term.Inbox("A1")
		return len(in) == 1 && in[0].Read && tab.term.Unread("A1") == 0, fmt.Sprint(in, err)
	})

	if err := kB.term.Logout(); err != nil {
		t.Fatal(err)
	}
	if ok, _ := sentHas(kB, "A1", letter); ok {
		t.Fatal("kiosk B still lists Ana's letter after she logged out")
	}
	kB.waitSynced()
	if dirHolds(t, kB.dir, letter) {
		t.Fatal("kiosk B's files still hold the text of Ana's letter after she logged out")
	}
	// The tablet keeps it: it is hers.
	if ok, _ := sentHas(tab, "A1", letter); !ok {
		t.Fatal("the tablet lost Ana's letter")
	}
}
