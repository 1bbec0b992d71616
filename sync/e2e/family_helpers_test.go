package e2e

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"testing"
)

var (
	codeLine  = regexp.MustCompile(`Identification code: ([A-Z2-7]{4}-[A-Z2-7]{4}-[A-Z2-7]{4}-[A-Z2-7]{4})`)
	csrfField = regexp.MustCompile(`name="csrf" value="([0-9a-f]{64})"`)
)

// spooledCode reads the code of the newest invitation in the spool for contact id, as the
// contact reads it in the email.
func spooledCode(t testing.TB, dir, id string) string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, id+"-*.eml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no invitation for contact %s in %s (%v)", id, dir, err)
	}
	sort.Strings(files)
	raw, err := os.ReadFile(files[len(files)-1])
	if err != nil {
		t.Fatal(err)
	}
	m := codeLine.FindStringSubmatch(string(raw))
	if m == nil {
		t.Fatalf("invitation %s has no code:\n%s", files[len(files)-1], raw)
	}
	return m[1]
}

// familyAnswer answers an invitation as a contact does in a browser: open the family page,
// enter the code, press one of the answers. It returns the last page's status and text.
func familyAnswer(t testing.TB, rl *relayEnv, code, answer string) (int, string) {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	hc := &http.Client{Jar: jar}
	base := "http://" + rl.addr() + "/family/"
	get := func(resp *http.Response, err error) (int, string) {
		t.Helper()
		if err != nil {
			t.Fatalf("family page: %v", err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, string(b)
	}
	st, page := get(hc.Get(base))
	m := csrfField.FindStringSubmatch(page)
	if st != http.StatusOK || m == nil {
		t.Fatalf("family page: %d\n%s", st, page)
	}
	st, page = get(hc.PostForm(base, url.Values{"csrf": {m[1]}, "code": {code}}))
	if st != http.StatusOK {
		return st, page
	}
	return get(hc.PostForm(base+"answer", url.Values{"csrf": {m[1]}, "code": {code}, "answer": {answer}}))
}

// call is an admin request whose refusal the test looks at: the status and the body.
func (e *relayEnv) call(method, path string, in any) (int, string) {
	e.t.Helper()
	raw, err := json.Marshal(in)
	if err != nil {
		e.t.Fatal(err)
	}
	req, err := http.NewRequest(method, "http://"+e.addr()+path, bytes.NewReader(raw))
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+adminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}
