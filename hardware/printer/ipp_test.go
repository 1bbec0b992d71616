package printer

import (
	"encoding/binary"
	"strings"
	"testing"
)

// encodeResponse builds an IPP response the way a server writes one, for the parser's tests.
func encodeResponse(status uint16, groups ...[]attr) []byte {
	b := encodeRequest(status, 1, nil) // the same header layout; its empty operation group stays
	b = b[:len(b)-1]                   // drop the end tag
	for i, g := range groups {
		tag := byte(tagOperation)
		if i > 0 {
			tag = tagJob
		}
		b = append(b, tag)
		for _, a := range g {
			for j, v := range a.values {
				name := a.name
				if j > 0 {
					name = ""
				}
				b = append(b, a.tag)
				b = binary.BigEndian.AppendUint16(b, uint16(len(name)))
				b = append(b, name...)
				b = binary.BigEndian.AppendUint16(b, uint16(len(v)))
				b = append(b, v...)
			}
		}
	}
	return append(b, tagEnd)
}

func enum(n int) []byte { return binary.BigEndian.AppendUint32(nil, uint32(n)) }

func jobResponse(state JobState) []byte {
	return encodeResponse(0,
		[]attr{{tagCharset, "attributes-charset", [][]byte{[]byte("utf-8")}}},
		[]attr{
			{tagInteger, "job-id", [][]byte{enum(12)}},
			{tagEnum, "job-state", [][]byte{enum(int(state))}},
			{tagKeyword, "job-state-reasons", [][]byte{[]byte("job-completed-with-errors"), []byte("processing-to-stop-point")}},
		})
}

func TestParseResponse(t *testing.T) {
	r, err := parseResponse(jobResponse(JobAborted))
	if err != nil {
		t.Fatal(err)
	}
	if r.int("job-id") != 12 || JobState(r.int("job-state")) != JobAborted {
		t.Fatalf("job-id %d, job-state %d", r.int("job-id"), r.int("job-state"))
	}
	if got := r.strings("job-state-reasons"); len(got) != 2 || got[1] != "processing-to-stop-point" {
		t.Fatalf("reasons %q", got)
	}
	full := jobResponse(JobCompleted)
	for _, tc := range []struct {
		name string
		b    []byte
		want string
	}{
		{"short", full[:5], "too short"},
		{"version", append([]byte{9, 9}, full[2:]...), "version"},
		{"cut", full[:len(full)-4], "cut"},
		{"no end", full[:len(full)-1], "without end-of-attributes"},
		{"value before group", append(append([]byte{}, full[:8]...), tagInteger, 0, 0, 0, 0, tagEnd), "before any group"},
		{"orphan additional value", append(append([]byte{}, full[:8]...), tagOperation, tagInteger, 0, 0, 0, 0, tagEnd), "no attribute before"},
	} {
		if _, err := parseResponse(tc.b); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error saying %q", tc.name, err, tc.want)
		}
	}
}

func FuzzParseResponse(f *testing.F) {
	f.Add(jobResponse(JobCompleted))
	f.Add(jobResponse(JobProcessing))
	f.Add(encodeResponse(statusNotFound, []attr{{tagText, "status-message", [][]byte{[]byte("no such job")}}}))
	f.Add([]byte{2, 0, 0, 0, 0, 0, 0, 1, 3})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := parseResponse(b)
		if err != nil {
			return
		}
		// Whatever decodes can be read without panicking, and no value runs past the input.
		_ = r.int("job-state")
		_ = r.strings("job-state-reasons")
		_ = r.message()
		for _, vs := range r.attrs {
			for _, v := range vs {
				if len(v.data) > len(b) {
					t.Fatalf("a value of %d bytes from %d bytes of input", len(v.data), len(b))
				}
			}
		}
	})
}

func TestCheckQueueName(t *testing.T) {
	for _, ok := range []string{"facility", "north_hp-4050", "Kiosk.Printer"} {
		if err := CheckQueueName(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "a b", "a/b", "a#b", strings.Repeat("q", 128), "tab\there"} {
		if err := CheckQueueName(bad); err == nil {
			t.Errorf("%q was accepted", bad)
		}
	}
}
