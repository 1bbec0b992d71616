package kiosk

import (
	"sort"
	"strings"
)

// plainText makes s valid UTF-8 without control characters ('?' for each) of at most n bytes.
func plainText(s string, n int) string {
	s = strings.ToValidUTF8(s, "?")
	s = strings.Map(func(r rune) rune {
		if ControlRune(r) {
			return '?'
		}
		return r
	}, s)
	return capText(s, n)
}

// fitAudit makes an event meet the wire limits without dropping it: kind, actor and detail
// keys lose control characters and excess bytes, values excess bytes (they may hold line
// breaks), and beyond MaxAuditDetail entries the first ones in key order are kept.
func fitAudit(ev AuditEvent) AuditEvent {
	ev.Kind = plainText(ev.Kind, MaxAuditKindLen)
	if ev.Kind == "" {
		ev.Kind = "unnamed"
	}
	ev.Actor = plainText(ev.Actor, MaxAuditActorLen)
	if len(ev.Detail) == 0 {
		ev.Detail = nil
		return ev
	}
	keys := make([]string, 0, len(ev.Detail))
	for k := range ev.Detail {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	d := make(map[string]string, min(len(keys), MaxAuditDetail))
	for _, k := range keys {
		if len(d) == MaxAuditDetail {
			break
		}
		fk := plainText(k, MaxAuditDetailKey)
		if fk == "" {
			fk = "?"
		}
		d[fk] = capText(strings.ToValidUTF8(ev.Detail[k], "?"), MaxAuditDetailValue)
	}
	ev.Detail = d
	return ev
}
