// Package server is the fleet server's HTTP side: thin handlers per
// resource (check-ins, reports, devices, releases, the web page) over a
// fleet.Store. It verifies every agent message before anything is stored,
// binds each serial to one key, ignores replays, answers check-ins with
// holds, and pauses a release on its own when a stage fails too often.
//
// It never tells an agent to start anything: a Hold can only stop. It must
// not sign or change manifests (that is fwctl's, with the release keys).
package server

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/sirupsen/logrus"

	"github.com/fwagent/fwagent/fleet"
)

// Enrolment modes.
const (
	// EnrolApprove: an unknown key waits as pending until an administrator
	// approves its serial (the default).
	EnrolApprove = "approve"
	// EnrolOpen: the first key that claims a serial owns it.
	EnrolOpen = "open"
)

// ActorHeader carries who runs an admin command (fwctl sends user@host),
// recorded in the pause log next to "admin".
const ActorHeader = "X-Fleet-Actor"

// Options configure a Server.
type Options struct {
	// Enrolment is EnrolApprove (default) or EnrolOpen.
	Enrolment string
	// AdminToken guards the admin API; empty disables it (403).
	AdminToken string
	// ViewerToken, if set, reads what the admin token reads (the web page,
	// devices, releases, reports, counters) and changes nothing: support
	// can look at the fleet without the power to pause, approve or import.
	ViewerToken string
	// MaxFailureRate (a fraction, 0.2 for 20%) and MinInstalls arm the
	// auto-pause: a release is paused when its current stage has at least
	// MinInstalls finished installs and more than MaxFailureRate of them
	// failed. MaxFailureRate 0 disables it.
	MaxFailureRate float64
	MinInstalls    int
	// CheckInInterval, if set, is sent to agents as the interval to use.
	CheckInInterval time.Duration
	// HoldCacheTTL bounds how long a server answers with holds it read
	// before (default 1 s): a pause made through another server reaches
	// this server's agents within it.
	HoldCacheTTL time.Duration
	// PageRefresh is how often the web page reloads (default
	// DefaultPageRefresh).
	PageRefresh time.Duration
	// MaxBatch bounds the check-ins and reports stored in one transaction
	// (default 500).
	MaxBatch int
	// Writers is the number of concurrent check-in transactions (default
	// 2: fewer transactions in flight make larger batches, fewer round
	// trips per check-in; 4 stored a third fewer check-ins per second on
	// the 2-core bench machine, 1 left the CPU idle during each commit).
	Writers int
	// Limits bound the requests of each source address (the zero value:
	// none).
	Limits Limits
	// Logger (nil: discard).
	Logger logrus.FieldLogger
}

// Server is the fleet server. Build it with New, serve Handler, Close it.
type Server struct {
	// Now is the clock (tests set it).
	Now func() time.Time

	store     fleet.Store
	opt       Options
	adminSum  [sha256.Size]byte
	viewerSum [sha256.Size]byte // zero: no viewer token
	log       logrus.FieldLogger

	queue    chan *job     // verified check-ins and reports for the writers
	stopped  chan struct{} // closed once the writers ended (Close)
	stopOnce sync.Once
	wg       sync.WaitGroup
	closing  chan struct{}
	once     sync.Once

	holds    atomic.Pointer[holdCache]
	holdsMu  sync.Mutex   // one refresh of holds at a time
	holdsGen atomic.Int64 // changes with every pause and resume this server makes
	storeErr atomic.Int64 // requests answered 503

	flushMu   sync.Mutex // one FlushCounters at a time
	refusedMu sync.Mutex
	refused   map[string]int64 // refusals not written yet
	auto      autoQueue        // releases whose stage counts changed
	sources   *sources         // nil: no limit per source
}

type holdCache struct {
	at    time.Time
	gen   int64 // holdsGen when the holds were read: an entry from before a pause or resume is never used
	holds []fleet.Hold
}

// New returns a server over store and starts its check-in writers.
func New(store fleet.Store, opt Options) (*Server, error) {
	switch opt.Enrolment {
	case "":
		opt.Enrolment = EnrolApprove
	case EnrolApprove, EnrolOpen:
	default:
		return nil, fmt.Errorf("enrolment %q: use approve or open", opt.Enrolment)
	}
	if opt.MaxFailureRate < 0 || opt.MaxFailureRate > 1 {
		return nil, fmt.Errorf("max failure rate %g: use a fraction from 0 to 1", opt.MaxFailureRate)
	}
	if opt.MinInstalls < 0 {
		return nil, errors.New("min installs must be 0 or more")
	}
	if err := opt.Limits.check(); err != nil {
		return nil, err
	}
	if opt.HoldCacheTTL <= 0 {
		opt.HoldCacheTTL = time.Second
	}
	if opt.MaxBatch <= 0 {
		opt.MaxBatch = 500
	}
	if opt.Writers <= 0 {
		opt.Writers = 2
	}
	log := opt.Logger
	if log == nil {
		l := logrus.New()
		l.Out = io.Discard
		log = l
	}
	s := &Server{Now: time.Now, store: store, opt: opt, log: log,
		queue: make(chan *job, 4*opt.MaxBatch), stopped: make(chan struct{}), closing: make(chan struct{})}
	if opt.ViewerToken != "" && opt.AdminToken == "" {
		return nil, errors.New("a viewer token needs an admin token: the admin API is off without one")
	}
	if opt.ViewerToken != "" && opt.ViewerToken == opt.AdminToken {
		return nil, errors.New("the viewer token is the admin token: give support a token of its own")
	}
	if opt.Limits.on() {
		s.sources = newSources(opt.Limits, log)
	}
	if opt.AdminToken != "" {
		s.adminSum = sha256.Sum256([]byte(opt.AdminToken))
	}
	if opt.ViewerToken != "" {
		s.viewerSum = sha256.Sum256([]byte(opt.ViewerToken))
	}
	for i := 0; i < opt.Writers; i++ {
		s.wg.Add(1)
		go s.writer()
	}
	s.refused = map[string]int64{}
	s.wg.Add(1)
	go s.counterFlusher()
	s.auto.cond = sync.NewCond(&s.auto.mu)
	s.auto.pending = map[string]bool{}
	s.auto.notBefore = map[string]time.Time{}
	s.wg.Add(1)
	go s.autoPauser()
	return s, nil
}

// Close stops the writers once they stored what was queued, answers 503
// to a message queued too late for them, and stops the auto-pause checks
// and the counter flush; it does not close the store.
func (s *Server) Close() error {
	s.once.Do(func() {
		close(s.closing)
		s.auto.mu.Lock()
		s.auto.closed = true
		s.auto.cond.Broadcast()
		s.auto.mu.Unlock()
	})
	s.wg.Wait()
	s.stopOnce.Do(func() {
		close(s.stopped)
		// A job a handler queued as the writers ended.
		for {
			select {
			case j := <-s.queue:
				j.done <- jobResult{err: errShuttingDown}
			default:
				return
			}
		}
	})
	return nil
}

// Handler returns the server's routes, behind the limits per source.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+fleet.CheckInPath, s.handleCheckIn)
	mux.HandleFunc("POST "+fleet.ReportPath, s.handleReport)
	mux.HandleFunc("GET /healthz", s.handleHealth)
	mux.Handle("GET /v1/admin/devices", s.admin(roleViewer, s.handleDevices))
	mux.Handle("GET /v1/admin/devices/{serial}", s.admin(roleViewer, s.handleDevice))
	mux.Handle("POST /v1/admin/approve", s.admin(roleAdmin, s.handleApprove))
	mux.Handle("POST /v1/admin/forget", s.admin(roleAdmin, s.handleForget))
	mux.Handle("GET /v1/admin/releases", s.admin(roleViewer, s.handleReleases))
	mux.Handle("PUT /v1/admin/releases/{id}/rollout", s.admin(roleAdmin, s.handleSetRollout))
	mux.Handle("POST /v1/admin/releases/{id}/pause", s.admin(roleAdmin, s.handlePause(true)))
	mux.Handle("POST /v1/admin/releases/{id}/resume", s.admin(roleAdmin, s.handlePause(false)))
	mux.Handle("GET /v1/admin/releases/{id}/reports", s.admin(roleViewer, s.handleReports))
	mux.Handle("POST /v1/admin/import", s.admin(roleAdmin, s.handleImport))
	mux.Handle("GET /v1/admin/counters", s.admin(roleViewer, s.handleCounters))
	s.webRoutes(mux)
	return s.limit(mux)
}

// role is what a token may do.
type role int

const (
	roleNone   role = iota
	roleViewer      // reads
	roleAdmin       // reads and changes
)

// roleOf returns the role of token (compared with the admin and viewer
// tokens as SHA-256 digests in constant time; a token the server was not
// given matches nothing).
func (s *Server) roleOf(token string) role {
	sum := sha256.Sum256([]byte(token))
	switch {
	case s.opt.AdminToken != "" && subtle.ConstantTimeCompare(sum[:], s.adminSum[:]) == 1:
		return roleAdmin
	case s.opt.ViewerToken != "" && subtle.ConstantTimeCompare(sum[:], s.viewerSum[:]) == 1:
		return roleViewer
	}
	return roleNone
}

// requestToken returns the token r carries in a Bearer header or, when
// basic is true (the web page), as an HTTP Basic password; surrounding
// white space is trimmed. Empty: r carries none, and an empty token is
// none.
func requestToken(r *http.Request, basic bool) string {
	if _, pw, ok := r.BasicAuth(); ok {
		if basic {
			return strings.TrimSpace(pw)
		}
		return ""
	}
	if scheme, t, ok := strings.Cut(r.Header.Get("Authorization"), " "); ok && strings.EqualFold(scheme, "Bearer") {
		return strings.TrimSpace(t)
	}
	return ""
}

// admin guards a handler of the admin API: need is roleViewer for reads
// (the admin or the viewer token) and roleAdmin for changes.
func (s *Server) admin(need role, h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.opt.AdminToken == "" {
			writeError(w, http.StatusForbidden, "the admin API is off: start the server with --admin-token-file")
			return
		}
		token := requestToken(r, false)
		if token == "" {
			w.Header().Set("WWW-Authenticate", `Bearer realm="fwagent fleet admin"`)
			writeError(w, http.StatusUnauthorized, "missing admin token: pass --admin-token-file (the server's own)")
			return
		}
		got := s.roleOf(token)
		switch {
		case got == roleNone:
			if !s.wrongToken(w, r, false) {
				return
			}
			s.log.WithField("remote", r.RemoteAddr).Warn("admin request with a wrong token refused")
			writeError(w, http.StatusUnauthorized, "wrong admin token")
			return
		case got < need:
			s.log.WithFields(logrus.Fields{"remote": r.RemoteAddr, "path": r.URL.Path}).Warn("change with the viewer token refused")
			writeError(w, http.StatusForbidden, "the viewer token reads only: this change needs the admin token")
			return
		}
		h(w, r)
	})
}

// maxActorLen bounds the X-Fleet-Actor name kept, in bytes.
const maxActorLen = 64

// actor names who made an admin change: "admin", or "admin (user@host)"
// with the X-Fleet-Actor header cut to maxActorLen bytes on a character
// boundary. A header that is not valid UTF-8 or holds a control character
// is an error (the caller answers 400): it would garble the pause log or
// fail the transaction that records it.
func actor(r *http.Request) (string, error) {
	a := strings.TrimSpace(r.Header.Get(ActorHeader))
	if err := checkParam("header "+ActorHeader, a, len(a)); err != nil {
		return "", err
	}
	if len(a) > maxActorLen {
		n := maxActorLen
		for n > 0 && !utf8.RuneStart(a[n]) {
			n--
		}
		a = strings.TrimSpace(a[:n])
	}
	if a == "" {
		return "admin", nil
	}
	return "admin (" + a + ")", nil
}

func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	if err := s.store.Ping(ctx); err != nil {
		writeError(w, http.StatusServiceUnavailable, "the fleet database does not answer")
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = io.WriteString(w, "ok\n")
}

// unavailable answers 503 for a store error and logs it.
func (s *Server) unavailable(w http.ResponseWriter, err error) {
	if errors.Is(err, fleet.ErrCommitUnknown) {
		// The message may be stored: sent again, a report is recognised by
		// its sequence number and ignored, an imported report by its id,
		// and a check-in is signed afresh.
		s.unavailableSaying(w, err, "the fleet database lost the connection while storing this: it may have been stored; send it again later (one already stored is ignored)")
		return
	}
	s.unavailableSaying(w, err, "the fleet database is unavailable: nothing was stored, send it again later")
}

// unavailableSaying answers a store error 503 with msg, counting and
// logging it like unavailable.
func (s *Server) unavailableSaying(w http.ResponseWriter, err error, msg string) {
	s.storeErr.Add(1)
	s.log.WithError(err).Error("fleet database error")
	writeError(w, http.StatusServiceUnavailable, msg)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}

// readBody reads at most max bytes; it answers 413 or 400 itself and
// returns ok false.
func readBody(w http.ResponseWriter, r *http.Request, max int64) ([]byte, bool) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, max))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("the body is larger than %d bytes", max))
			return nil, false
		}
		writeError(w, http.StatusBadRequest, "read the request body: "+err.Error())
		return nil, false
	}
	return body, true
}
