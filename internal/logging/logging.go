// Package logging is how Tether's programs log: log/slog, text by default (what journald
// stores line by line), JSON on -log-format json (for a log shipper), with levels. The
// libraries log through a printf-style kiosk.Logf; Logf adapts one to a slog.Logger, so
// every line of a program goes through the same handler and carries the same attributes
// (kioskd's terminal id and facility).
//
// What may never be logged (PINs, badge ids, message bodies, tokens, enrollment codes) is
// kept out where the line is written; a test in sync/e2e runs real flows with known values
// and scans every line.
package logging

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
)

// Format is how lines are written.
type Format string

const (
	Text Format = "text"
	JSON Format = "json"
)

// Options are the logging flags.
type Options struct {
	Format Format
	Level  slog.Level
}

// Register adds -log-format and -log-level to fs.
func (o *Options) Register(fs *flag.FlagSet) {
	o.Format = Text
	fs.Func("log-format", "log lines as text (default; journald) or json", func(s string) error {
		switch Format(s) {
		case Text, JSON:
			o.Format = Format(s)
			return nil
		}
		return fmt.Errorf("%q is not text or json", s)
	})
	fs.Func("log-level", "least important lines logged: debug, info (default), warn or error", func(s string) error {
		return o.Level.UnmarshalText([]byte(s))
	})
}

// New makes the logger. Under systemd with the output going to the journal ($JOURNAL_STREAM
// set), text lines leave out the time: the journal stamps each line itself.
func New(w io.Writer, o Options, getenv func(string) string) *slog.Logger {
	ho := &slog.HandlerOptions{Level: o.Level}
	if o.Format == JSON {
		return slog.New(slog.NewJSONHandler(w, ho))
	}
	if getenv != nil && getenv("JOURNAL_STREAM") != "" {
		ho.ReplaceAttr = func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		}
	}
	return slog.New(slog.NewTextHandler(w, ho))
}

// Logf adapts a logger to the libraries' printf-style logging. A line "relay: refused ..."
// keeps its words (what technicians grep for) and gets component=relay; its level is Warn when it says something
// failed or was refused, Info otherwise (the libraries' lines say so in words).
func Logf(l *slog.Logger) func(format string, args ...any) {
	return func(format string, args ...any) {
		msg := fmt.Sprintf(format, args...)
		var attrs []any
		if comp, _, ok := strings.Cut(msg, ": "); ok && isComponent(comp) {
			attrs = append(attrs, slog.String("component", comp))
		}
		l.Log(context.Background(), Level(msg), msg, attrs...)
	}
}

// isComponent is whether a line's prefix names a part of the program ("relay", "sync",
// "screen", "device \"pinpad\""): one short word, not a sentence.
func isComponent(s string) bool {
	if s == "" || len(s) > 24 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}

// Level is the level of a library line: Warn when it has one of the words that mark a
// failure or a refusal, or is an HTTP call answered 4xx or 5xx ("... -> 401 (2ms)": a wrong
// admin token is worth seeing), Info otherwise.
func Level(msg string) slog.Level {
	if _, after, ok := strings.Cut(msg, " -> "); ok && len(after) >= 3 && (after[0] == '4' || after[0] == '5') {
		return slog.LevelWarn
	}
	m := strings.ToLower(msg)
	for _, w := range [...]string{"fail", "error", "refused", "damaged", "cannot", "could not", "panic", "hung", "giving up", "not ready", "clamped", "dropped"} {
		if strings.Contains(m, w) {
			return slog.LevelWarn
		}
	}
	return slog.LevelInfo
}
