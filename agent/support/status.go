package support

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sirupsen/logrus"
)

// Defaults of the status endpoint's rate limit.
const (
	DefaultMaxFailures = 5
	DefaultLockout     = time.Minute
)

// StatusOptions configures the status endpoint.
type StatusOptions struct {
	// Token is the bearer token every request must carry; empty means no
	// token (allowed on loopback addresses only, see CheckListen).
	Token string
	// Status returns the JSON document of GET /v1/status (identity, journal
	// step, last result, next poll); nil answers 503. The encoded document
	// is redacted as the default support bundle is: personal data (MAC and
	// IP addresses, device IDs and names, emails, user names) and secrets
	// are replaced by markers; model, serial and firmware stay.
	Status func() any
	// Bundle writes a redacted support bundle for GET /v1/support-bundle; nil
	// answers 404.
	Bundle func(w io.Writer) error
	// Metrics serves GET /metrics (a *Metrics, or a site's SiteMetrics);
	// nil answers 404.
	Metrics io.WriterTo
	// Logger receives rejected requests (never the token); nil discards.
	Logger logrus.FieldLogger
	// Now is the clock of the rate limit; nil means time.Now.
	Now func() time.Time
	// MaxFailures failed authentications from one address within Lockout
	// lock that address out for Lockout (answers 429). Zero: defaults.
	MaxFailures int
	Lockout     time.Duration
}

// StatusServer is the http.Handler of the status endpoint: GET /v1/status,
// GET /v1/support-bundle and GET /metrics.
type StatusServer struct {
	opts StatusOptions
	mux  *http.ServeMux

	mu       sync.Mutex
	failures map[string]*failureCount
}

type failureCount struct {
	n      int
	first  time.Time // start of the counting window
	locked time.Time // locked out until this time
}

var _ http.Handler = (*StatusServer)(nil)

// maxTracked bounds the per-address failure table.
const maxTracked = 4096

// NewStatusServer returns the handler for opts, filling defaults.
func NewStatusServer(opts StatusOptions) *StatusServer {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.MaxFailures <= 0 {
		opts.MaxFailures = DefaultMaxFailures
	}
	if opts.Lockout <= 0 {
		opts.Lockout = DefaultLockout
	}
	if opts.Logger == nil {
		l := logrus.New()
		l.SetOutput(io.Discard)
		opts.Logger = l
	}
	s := &StatusServer{opts: opts, mux: http.NewServeMux(), failures: map[string]*failureCount{}}
	s.mux.HandleFunc("GET /v1/status", s.status)
	s.mux.HandleFunc("GET /v1/support-bundle", s.bundle)
	s.mux.HandleFunc("GET /metrics", s.metrics)
	return s
}

// ServeHTTP checks the token (when one is configured) and the rate limit,
// then serves the endpoint.
func (s *StatusServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if s.opts.Token != "" && !s.authorize(w, r) {
		return
	}
	s.mux.ServeHTTP(w, r)
}

// authorize answers 401 or 429 itself and returns false when the request may
// not go on.
func (s *StatusServer) authorize(w http.ResponseWriter, r *http.Request) bool {
	addr := remoteHost(r.RemoteAddr)
	now := s.opts.Now()
	s.mu.Lock()
	fc := s.failures[addr]
	if fc != nil && now.Before(fc.locked) {
		retry := int(fc.locked.Sub(now).Seconds() + 0.999)
		s.mu.Unlock()
		w.Header().Set("Retry-After", strconv.Itoa(retry))
		http.Error(w, "too many failed attempts: retry later", http.StatusTooManyRequests)
		return false
	}
	s.mu.Unlock()

	reason := ""
	got, ok := bearer(r.Header.Get("Authorization"))
	switch {
	case !ok:
		reason = "missing bearer token"
	case !tokenEqual(got, s.opts.Token):
		reason = "wrong bearer token"
	}
	if reason == "" {
		s.mu.Lock()
		delete(s.failures, addr)
		s.mu.Unlock()
		return true
	}

	s.mu.Lock()
	fc = s.failures[addr]
	if fc == nil || now.Sub(fc.first) > s.opts.Lockout {
		if len(s.failures) >= maxTracked {
			s.prune(now)
		}
		fc = &failureCount{first: now}
		s.failures[addr] = fc
	}
	fc.n++
	lockedOut := fc.n >= s.opts.MaxFailures
	if lockedOut {
		fc.locked = now.Add(s.opts.Lockout)
		fc.n = 0
		fc.first = fc.locked
	}
	s.mu.Unlock()

	fields := logrus.Fields{"remote": addr, "path": r.URL.Path, "reason": reason}
	if lockedOut {
		s.opts.Logger.WithFields(fields).Warnf("status endpoint: %d failed authentications, locking the address out for %s", s.opts.MaxFailures, s.opts.Lockout)
	} else {
		s.opts.Logger.WithFields(fields).Warn("status endpoint: rejected request")
	}
	w.Header().Set("WWW-Authenticate", `Bearer realm="fwagent"`)
	http.Error(w, "unauthorized: send Authorization: Bearer <token from status.token_file>", http.StatusUnauthorized)
	return false
}

// tokenEqual compares the SHA-256 digests of both tokens in constant time:
// comparing the raw tokens would return early on a length mismatch and so
// tell the token's length.
func tokenEqual(got, want string) bool {
	g, w := sha256.Sum256([]byte(got)), sha256.Sum256([]byte(want))
	return subtle.ConstantTimeCompare(g[:], w[:]) == 1
}

// prune drops entries that neither lock nor count any more; if the table is
// still full it drops the running counters too (a flood of addresses must
// not grow memory) but keeps every active lockout: clearing those would let
// a locked-out guesser go on by flooding the table. Locked entries expire
// after Lockout, and each takes MaxFailures requests to make, so they stay
// bounded by the request rate.
func (s *StatusServer) prune(now time.Time) {
	for k, fc := range s.failures {
		if now.After(fc.locked) && now.Sub(fc.first) > s.opts.Lockout {
			delete(s.failures, k)
		}
	}
	if len(s.failures) >= maxTracked {
		for k, fc := range s.failures {
			if !now.Before(fc.locked) {
				delete(s.failures, k)
			}
		}
	}
}

func bearer(h string) (string, bool) {
	scheme, tok, ok := strings.Cut(strings.TrimSpace(h), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	tok = strings.TrimSpace(tok)
	return tok, tok != ""
}

func remoteHost(addr string) string {
	if h, _, err := net.SplitHostPort(addr); err == nil {
		return h
	}
	return addr
}

func (s *StatusServer) status(w http.ResponseWriter, _ *http.Request) {
	if s.opts.Status == nil {
		http.Error(w, "status not available yet", http.StatusServiceUnavailable)
		return
	}
	b, err := json.MarshalIndent(s.opts.Status(), "", "  ")
	if err != nil {
		s.opts.Logger.WithError(err).Error("status endpoint: encode status")
		http.Error(w, "cannot encode status", http.StatusInternalServerError)
		return
	}
	// Privacy by default: the token lets a monitoring system in, not
	// consent to personal data; the same redactor as the default bundle.
	b = RedactBytes(b, false)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Write(append(b, '\n'))
}

func (s *StatusServer) bundle(w http.ResponseWriter, _ *http.Request) {
	if s.opts.Bundle == nil {
		http.NotFound(w, nil)
		return
	}
	var buf bytes.Buffer
	if err := s.opts.Bundle(&buf); err != nil {
		s.opts.Logger.WithError(err).Error("status endpoint: build support bundle")
		http.Error(w, "cannot build the support bundle: see the agent log", http.StatusInternalServerError)
		return
	}
	name := fmt.Sprintf("fwagent-support-%s.tar.gz", s.opts.Now().UTC().Format("20060102T150405Z"))
	w.Header().Set("Content-Type", "application/gzip")
	w.Header().Set("Content-Disposition", `attachment; filename="`+name+`"`)
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Length", strconv.Itoa(buf.Len()))
	w.Write(buf.Bytes())
}

func (s *StatusServer) metrics(w http.ResponseWriter, _ *http.Request) {
	if m, ok := s.opts.Metrics.(*Metrics); s.opts.Metrics == nil || (ok && m == nil) {
		http.NotFound(w, nil)
		return
	}
	var buf bytes.Buffer
	if _, err := s.opts.Metrics.WriteTo(&buf); err != nil {
		http.Error(w, "cannot write metrics", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	w.Write(buf.Bytes())
}

// CheckListen validates status.listen against the token: an empty listen
// (endpoint off) is fine; a non-loopback address (including ":port", which
// listens on every interface, and host names other than localhost) needs a
// token. The agent refuses to start when it returns an error.
func CheckListen(listen, token string) error {
	if listen == "" {
		return nil
	}
	host, port, err := net.SplitHostPort(listen)
	if err != nil || port == "" {
		return fmt.Errorf("%w: got %q", ErrBadListen, listen)
	}
	if token != "" || isLoopback(host) {
		return nil
	}
	return fmt.Errorf("%w (status.listen is %q)", ErrNoToken, listen)
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
