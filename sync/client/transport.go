package client

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/tether-kiosk/tether/sync/wire"
)

// Transport says how the terminal trusts its relay. The zero value uses the system roots.
type Transport struct {
	// CAFile is a PEM file of CA certificates to trust instead of the system roots.
	CAFile string `json:"ca_file,omitempty"`
	// PinSHA256 pins the relay's leaf certificate by the SHA-256 of its DER bytes (hex); the
	// chain is then not checked.
	PinSHA256 string `json:"pin_sha256,omitempty"`
	// Insecure allows plain ws:// and http:// to a relay that is not on loopback.
	Insecure bool `json:"insecure,omitempty"`
}

// endpoints are the relay's URLs derived from its base URL.
type endpoints struct {
	base      string // normalized, as stored
	websocket string // ws(s)://host/v1/terminal
	enroll    string // http(s)://host/v1/enroll
}

// parseRelayURL accepts wss://, https://, ws:// or http:// base URLs; plain ones only to
// loopback or with Insecure.
func parseRelayURL(raw string, tr Transport) (endpoints, error) {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil {
		// url's error repeats the whole URL, password included: name only what was wrong.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return endpoints{}, fmt.Errorf("relay URL: %w", err)
	}
	if u.User != nil {
		raw = u.Redacted()
	}
	if u.Host == "" {
		return endpoints{}, fmt.Errorf("relay URL %q: no host", raw)
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return endpoints{}, fmt.Errorf("relay URL %q: credentials, query and fragment are not allowed", raw)
	}
	var secure bool
	switch u.Scheme {
	case "wss", "https":
		secure = true
	case "ws", "http":
		if !tr.Insecure && !loopback(u.Hostname()) {
			return endpoints{}, fmt.Errorf("relay URL %q: plain %s:// is allowed only to a loopback address; use wss:// or set insecure", raw, u.Scheme)
		}
	default:
		return endpoints{}, fmt.Errorf("relay URL %q: scheme must be wss, https, ws or http", raw)
	}
	if tr.PinSHA256 != "" && !secure {
		return endpoints{}, fmt.Errorf("relay URL %q: a pinned certificate needs wss:// or https://", raw)
	}
	path := strings.TrimSuffix(u.Path, "/")
	ws, web := "ws", "http"
	if secure {
		ws, web = "wss", "https"
	}
	u.Path = path
	base := u.String()
	return endpoints{
		base:      base,
		websocket: ws + "://" + u.Host + path + wire.PathTerminal,
		enroll:    web + "://" + u.Host + path + wire.PathEnroll,
	}, nil
}

func loopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// httpClient builds the client both enrollment and the websocket dial use.
func (tr Transport) httpClient(timeout time.Duration) (*http.Client, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if tr.CAFile != "" {
		pem, err := os.ReadFile(tr.CAFile)
		if err != nil {
			return nil, fmt.Errorf("relay CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("relay CA file %s holds no PEM certificate", tr.CAFile)
		}
		cfg.RootCAs = pool
	}
	if tr.PinSHA256 != "" {
		pin, err := wire.ParseFingerprint(tr.PinSHA256)
		if err != nil {
			return nil, fmt.Errorf("relay pin: %w", err)
		}
		// The pin replaces chain verification: only the leaf's exact bytes are trusted.
		cfg.InsecureSkipVerify = true
		cfg.VerifyConnection = func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("relay presented no certificate")
			}
			if got := wire.Fingerprint(cs.PeerCertificates[0].Raw); got != pin {
				return fmt.Errorf("relay certificate fingerprint %s does not match the pinned %s", got, pin)
			}
			return nil
		}
	}
	return &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{
			Proxy:               http.ProxyFromEnvironment,
			TLSClientConfig:     cfg,
			TLSHandshakeTimeout: 10 * time.Second,
			DialContext:         (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		},
	}, nil
}

// MaxRelayURLs bounds a terminal's list of relay gateways (the enrolled URL included).
const MaxRelayURLs = wire.MaxRelayURLs

// relayEndpoints parses the relay's first URL and its further gateways, in order, dropping
// repeats: a list naming a gateway twice would spend two dials of every round on it.
func relayEndpoints(first string, more []string, tr Transport) ([]endpoints, error) {
	all := append([]string{first}, more...)
	if len(all) > 2*MaxRelayURLs {
		return nil, fmt.Errorf("relay URLs: %d given, at most %d", len(all), MaxRelayURLs)
	}
	var eps []endpoints
	seen := map[string]bool{}
	for _, raw := range all {
		if len(raw) > wire.MaxRelayURLLen {
			return nil, fmt.Errorf("relay URL of %d bytes: at most %d", len(raw), wire.MaxRelayURLLen)
		}
		ep, err := parseRelayURL(raw, tr)
		if err != nil {
			return nil, err
		}
		if !seen[ep.base] {
			seen[ep.base] = true
			eps = append(eps, ep)
		}
	}
	if len(eps) > MaxRelayURLs {
		return nil, fmt.Errorf("relay URLs: %d different ones, at most %d", len(eps), MaxRelayURLs)
	}
	return eps, nil
}
