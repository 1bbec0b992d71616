package relay

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"mime"
	"net"
	netmail "net/mail"
	"net/smtp"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// InvitationEmail is the whole message (headers and a plain-text body, CRLF lines) that
// invites n.Email: what SMTPNotifier sends and SpoolNotifier writes. Names are put in
// encoded-words and every header value is stripped of line breaks, so no name a contact or an
// inmate chose can add a header.
func InvitationEmail(from string, n InvitationNotice, now time.Time) []byte {
	clean := func(s string) string { return strings.Map(noBreaks, s) }
	var b bytes.Buffer
	fmt.Fprintf(&b, "From: %s\r\n", clean(from))
	fmt.Fprintf(&b, "To: %s\r\n", (&netmail.Address{Name: clean(n.ContactName), Address: clean(n.Email)}).String())
	fmt.Fprintf(&b, "Subject: %s\r\n", mime.QEncoding.Encode("utf-8", clean("Invitation to write with "+n.InmateName)))
	fmt.Fprintf(&b, "Date: %s\r\n", now.UTC().Format(time.RFC1123Z))
	b.WriteString("MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n")
	lines := []string{
		"Hello " + clean(n.ContactName) + ",",
		"",
		clean(n.InmateName) + " at facility " + clean(n.FacilityID) + " would like to exchange messages with you.",
		"Staff have approved you as a contact. Nothing is delivered until you answer.",
		"",
		"Identification code: " + n.Code,
		"Valid until: " + n.ExpiresAt.UTC().Format("2006-01-02 15:04 MST"),
		"",
		"Enter the code on the page below to accept, decline, block this person,",
		"or block every person at this facility from contacting you:",
		clean(n.URL),
		"",
		"If you did not expect this message you can ignore it; the code expires by itself.",
	}
	for _, l := range lines {
		b.WriteString(l + "\r\n")
	}
	return b.Bytes()
}

func noBreaks(r rune) rune {
	if r == '\r' || r == '\n' {
		return ' '
	}
	return r
}

// SpoolNotifier writes each invitation as one email file in Dir (for the demo, or a mail
// system that picks files up): <contact id>-<attempt time>.eml, written whole under a temporary
// name and renamed, so a reader never sees half a file.
type SpoolNotifier struct {
	Dir  string
	From string
	// Now names and dates the files (the relay's clock); nil is the wall clock.
	Now func() time.Time
}

// NotifyInvitation writes n to the spool.
func (s SpoolNotifier) NotifyInvitation(_ context.Context, n InvitationNotice) error {
	now := time.Now()
	if s.Now != nil {
		now = s.Now()
	}
	if err := os.MkdirAll(s.Dir, 0o700); err != nil {
		return fmt.Errorf("invitation spool %s: %w", s.Dir, err)
	}
	name := fmt.Sprintf("%s-%d.eml", n.ContactID, now.UnixNano())
	tmp, err := os.CreateTemp(s.Dir, ".tmp-*")
	if err != nil {
		return fmt.Errorf("invitation spool %s: %w", s.Dir, err)
	}
	defer os.Remove(tmp.Name()) // after the rename, a no-op
	if _, err := tmp.Write(InvitationEmail(s.From, n, now)); err != nil {
		tmp.Close()
		return fmt.Errorf("invitation spool: write %s: %w", tmp.Name(), err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("invitation spool: sync %s: %w", tmp.Name(), err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("invitation spool: close %s: %w", tmp.Name(), err)
	}
	if err := os.Rename(tmp.Name(), filepath.Join(s.Dir, name)); err != nil {
		return fmt.Errorf("invitation spool: %w", err)
	}
	return nil
}

// SMTPNotifier sends each invitation through an SMTP server (net/smtp).
type SMTPNotifier struct {
	// Addr is host:port of the server.
	Addr string
	From string
	// Username and Password, if set, authenticate with PLAIN (net/smtp refuses it without TLS
	// except to localhost).
	Username, Password string
	// StartTLS upgrades the connection when the server offers it; RequireTLS refuses to send
	// without it. TLSConfig is used for the upgrade (nil: verify Addr's host name).
	StartTLS   bool
	RequireTLS bool
	TLSConfig  *tls.Config
	Now        func() time.Time
}

// NotifyInvitation sends n, giving up when ctx ends.
func (s SMTPNotifier) NotifyInvitation(ctx context.Context, n InvitationNotice) error {
	host, _, err := net.SplitHostPort(s.Addr)
	if err != nil {
		return fmt.Errorf("smtp server %q: %w", s.Addr, err)
	}
	from, err := netmail.ParseAddress(s.From)
	if err != nil {
		return fmt.Errorf("smtp sender %q: %w", s.From, err)
	}
	if strings.ContainsAny(n.Email, "\r\n<>") {
		return fmt.Errorf("smtp: recipient address is malformed")
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", s.Addr)
	if err != nil {
		return fmt.Errorf("smtp: dial %s: %w", s.Addr, err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	c, err := smtp.NewClient(conn, host)
	if err != nil {
		return fmt.Errorf("smtp: greeting from %s: %w", s.Addr, err)
	}
	defer c.Close()
	if ok, _ := c.Extension("STARTTLS"); ok && (s.StartTLS || s.RequireTLS) {
		cfg := s.TLSConfig
		if cfg == nil {
			cfg = &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
		}
		if err := c.StartTLS(cfg); err != nil {
			return fmt.Errorf("smtp: starttls: %w", err)
		}
	} else if s.RequireTLS {
		return fmt.Errorf("smtp: %s does not offer STARTTLS", s.Addr)
	}
	if s.Username != "" {
		if err := c.Auth(smtp.PlainAuth("", s.Username, s.Password, host)); err != nil {
			return fmt.Errorf("smtp: auth: %w", err)
		}
	}
	if err := c.Mail(from.Address); err != nil {
		return fmt.Errorf("smtp: MAIL FROM: %w", err)
	}
	if err := c.Rcpt(n.Email); err != nil {
		return fmt.Errorf("smtp: RCPT TO: %w", err)
	}
	w, err := c.Data()
	if err != nil {
		return fmt.Errorf("smtp: DATA: %w", err)
	}
	now := time.Now()
	if s.Now != nil {
		now = s.Now()
	}
	if _, err := w.Write(InvitationEmail(s.From, n, now)); err != nil {
		return fmt.Errorf("smtp: write message: %w", err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("smtp: end of message: %w", err)
	}
	if err := c.Quit(); err != nil {
		return fmt.Errorf("smtp: QUIT: %w", err)
	}
	return nil
}

// InvitationCode finds the identification code in an invitation email (as InvitationEmail
// writes it), for a demo or a tool that answers on a contact's behalf with their consent.
func InvitationCode(email []byte) (string, bool) {
	_, rest, ok := bytes.Cut(email, []byte("Identification code: "))
	if !ok {
		return "", false
	}
	line, _, _ := bytes.Cut(rest, []byte("\r\n"))
	return normalizeCode(string(line))
}
