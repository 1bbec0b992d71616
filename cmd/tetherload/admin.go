package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/tether-kiosk/tether/kiosk"
	"github.com/tether-kiosk/tether/sync/wire"
)

// software is what the simulated terminals call themselves in hello and enrollment.
const software = "tetherload"

// endpoints are the relay's URLs, derived from the one base the user gives.
type endpoints struct {
	http string // http(s)://host[:port], no trailing slash
	ws   string // ws(s)://host[:port]/v1/terminal
}

// parseRelayURL accepts an http(s) or ws(s) base URL with no path, query or credentials.
func parseRelayURL(s string) (endpoints, error) {
	u, err := url.Parse(strings.TrimRight(strings.TrimSpace(s), "/"))
	if err != nil {
		return endpoints{}, fmt.Errorf("relay URL: %w", err)
	}
	if u.User != nil {
		return endpoints{}, errors.New("relay URL: must not carry a user or password (the admin token comes from -admin-token-file)")
	}
	if u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return endpoints{}, fmt.Errorf("relay URL %q: want a base like http://127.0.0.1:8443, without a path or query", u.Redacted())
	}
	var h, w string
	switch u.Scheme {
	case "http", "ws":
		h, w = "http", "ws"
	case "https", "wss":
		h, w = "https", "wss"
	default:
		return endpoints{}, fmt.Errorf("relay URL %q: scheme must be http, https, ws or wss", u.Redacted())
	}
	return endpoints{http: h + "://" + u.Host, ws: w + "://" + u.Host + wire.PathTerminal}, nil
}

// admin is a client of the relay's admin API and enrollment endpoint.
type admin struct {
	ep    endpoints
	token string
	hc    *http.Client
}

// call sends a JSON request and decodes a JSON answer; any status but want is an error naming
// the call and the relay's own explanation.
func (a *admin) call(ctx context.Context, method, path string, auth bool, in, out any, want int) error {
	var body io.Reader
	if in != nil {
		raw, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("%s %s: encode: %w", method, path, err)
		}
		body = bytes.NewReader(raw)
	}
	req, err := http.NewRequestWithContext(ctx, method, a.ep.http+path, body)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if auth {
		req.Header.Set("Authorization", "Bearer "+a.token)
	}
	resp, err := a.hc.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != want {
		raw, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		msg := strings.TrimSpace(string(raw))
		if resp.StatusCode == http.StatusUnauthorized {
			msg = "the admin token was refused (check -admin-token-file)"
		}
		return fmt.Errorf("%s %s: status %d, want %d: %s", method, path, resp.StatusCode, want, msg)
	}
	if out == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("%s %s: decode answer: %w", method, path, err)
	}
	return nil
}

// rosterInmate is the admin API's roster entry (sync/relay.RosterInmate's JSON).
type rosterInmate struct {
	ID       string   `json:"id"`
	Name     string   `json:"name"`
	Badges   []string `json:"badges"`
	PINHash  string   `json:"pin_hash"`
	Language string   `json:"language"`
	Status   string   `json:"status"`
}

type roster struct {
	Inmates     []rosterInmate `json:"inmates"`
	Technicians []struct{}     `json:"technicians"`
}

// setupFacility creates a facility with the default policy and n active inmates that share
// one cheap PIN hash (the load is about sync, not logins); it returns the inmate ids.
func (a *admin) setupFacility(ctx context.Context, facility string, n int, pinHash string) ([]string, error) {
	p := kiosk.DefaultPolicy()
	p.FacilityName = "Load " + facility
	if err := a.call(ctx, http.MethodPut, "/admin/v1/facilities/"+facility+"/policy", true, p, nil, http.StatusOK); err != nil {
		return nil, fmt.Errorf("facility %s: %w", facility, err)
	}
	ro := roster{Technicians: []struct{}{}}
	ids := make([]string, n)
	for i := range n {
		ids[i] = fmt.Sprintf("%s-i%02d", facility, i)
		ro.Inmates = append(ro.Inmates, rosterInmate{ID: ids[i], Name: fmt.Sprintf("Load Inmate %d", i),
			Badges: []string{"b-" + ids[i]}, PINHash: pinHash, Language: "en", Status: kiosk.StatusActive})
	}
	if err := a.call(ctx, http.MethodPut, "/admin/v1/facilities/"+facility+"/roster", true, ro, nil, http.StatusOK); err != nil {
		return nil, fmt.Errorf("facility %s: %w", facility, err)
	}
	return ids, nil
}

// enrollKiosk makes a one-time code for a kiosk of facility and enrolls a fresh ed25519 key
// with it, as a technician and a new terminal would.
func (a *admin) enrollKiosk(ctx context.Context, facility, label string) (wire.EnrollResponse, ed25519.PrivateKey, error) {
	var code struct {
		Code string `json:"code"`
	}
	req := map[string]string{"facility_id": facility, "mode": wire.ModeKiosk}
	if err := a.call(ctx, http.MethodPost, "/admin/v1/enrollments", true, req, &code, http.StatusCreated); err != nil {
		return wire.EnrollResponse{}, nil, err
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return wire.EnrollResponse{}, nil, fmt.Errorf("make terminal key: %w", err)
	}
	er := wire.EnrollRequest{Code: code.Code, PublicKey: priv.Public().(ed25519.PublicKey),
		Signature: wire.SignEnroll(priv, code.Code), Label: label, Software: software}
	var resp wire.EnrollResponse
	if err := a.call(ctx, http.MethodPost, wire.PathEnroll, false, er, &resp, http.StatusOK); err != nil {
		return wire.EnrollResponse{}, nil, err
	}
	if resp.Facility != facility || resp.Mode != wire.ModeKiosk || resp.TerminalID == "" {
		return wire.EnrollResponse{}, nil, fmt.Errorf("enroll: relay answered facility %q mode %q, want %q kiosk", resp.Facility, resp.Mode, facility)
	}
	return resp, priv, nil
}

// storedItem is the part of an item listed by GET /admin/v1/items that the check needs.
type storedItem struct {
	Seq        uint64 `json:"seq"`
	ID         string `json:"id"`
	TerminalID string `json:"terminal_id"`
	Epoch      string `json:"epoch"`
	Refused    string `json:"refused"`
}

// items lists every uplink item the relay stored.
func (a *admin) items(ctx context.Context) ([]storedItem, error) {
	var out struct {
		Items []storedItem `json:"items"`
	}
	if err := a.call(ctx, http.MethodGet, "/admin/v1/items", true, nil, &out, http.StatusOK); err != nil {
		return nil, err
	}
	return out.Items, nil
}
