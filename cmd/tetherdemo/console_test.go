package main

import (
	"bytes"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestDemoServesTheConsoleAndTheAdminAPI starts the demo's world (relay, seeded facility,
// kiosk history; no window) and checks what `make run` promises: the console's address and one
// login per role are printed, each login signs in, and the bearer API answers with the token.
func TestDemoServesTheConsoleAndTheAdminAPI(t *testing.T) {
	var out bytes.Buffer
	dir := filepath.Join(t.TempDir(), "demo")
	d, _, err := newDemo(dir, func(string, ...any) {}, &out)
	if err != nil {
		t.Fatal(err)
	}
	defer d.close()
	m := regexp.MustCompile(`Staff console: (http://127\.0\.0\.1:\d+/console/)`).FindStringSubmatch(out.String())
	if m == nil {
		t.Fatalf("the demo does not print the console's address:\n%s", out.String())
	}
	for _, a := range demoStaff() {
		if !strings.Contains(out.String(), a.Username+" / "+a.Password) {
			t.Errorf("the demo does not print the %s login", a.Username)
		}
		jar, _ := cookiejar.New(nil)
		c := &http.Client{Jar: jar}
		resp, err := c.Get(m[1])
		if err != nil {
			t.Fatal(err)
		}
		page, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		tok := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindSubmatch(page)
		if tok == nil {
			t.Fatalf("no login form at %s: %.200s", m[1], page)
		}
		resp, err = c.PostForm(m[1]+"login", url.Values{"csrf": {string(tok[1])}, "username": {a.Username}, "password": {a.Password}})
		if err != nil {
			t.Fatal(err)
		}
		page, _ = io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !bytes.Contains(page, []byte("Sign out")) {
			t.Errorf("%s cannot sign in: %d %.200s", a.Username, resp.StatusCode, page)
		}
		if a.Username == "mailroom" && !bytes.Contains(page, []byte("Maria")) {
			t.Errorf("the mailroom's review queue does not show Maria's held letter")
		}
	}
	raw, err := os.ReadFile(filepath.Join(dir, "relay", "admin-token"))
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodGet, d.url+"/admin/v1/terminals", nil)
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(raw)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("the demo's admin API answers %d with its token", resp.StatusCode)
	}
}
