package server

import (
	"fmt"
	"math"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/sirupsen/logrus"
	"golang.org/x/time/rate"

	"github.com/fwagent/fwagent/fleet"
)

// Limits bound what one source address may ask of the server, as hawkBit's
// DoS filter does: a token bucket per source for writes (POST, PUT and
// every method but GET and HEAD: check-ins, reports, admin changes) and
// another for reads (GET and HEAD: the admin API's reads, the web page,
// /healthz), a tighter one for wrong
// admin or viewer tokens, and networks that are never limited. A request
// over a limit is answered 429 with Retry-After before any handler reads
// it: nothing is stored.
//
// The source is the connection's remote address (never a header such as
// X-Forwarded-For); an IPv6 source is its /64, the block one host or site
// usually holds. The zero value limits nothing; fwctl fleet serve starts
// from DefaultLimits.
type Limits struct {
	// WriteRate is the requests per second of POST and PUT one source may
	// sustain. 0: no limit.
	WriteRate float64
	// WriteBurst is how many writes a source may make at once (its
	// bucket, refilled at WriteRate: a site's recorders checking in
	// together); at least 1 when WriteRate is set.
	WriteBurst int
	// ReadRate and ReadBurst do the same for GET and HEAD.
	ReadRate  float64
	ReadBurst int
	// AuthFailures is how many wrong admin or viewer tokens one source may
	// send per minute (as many at once). Past it, every request of that
	// source that carries a token is answered 429 without the token being
	// compared, until a minute/AuthFailures has passed; another source
	// with the right token is not slowed. 0: no limit.
	AuthFailures int
	// Exempt lists networks whose sources are never limited, not even for
	// wrong tokens (the server's own host, a trusted proxy).
	Exempt []netip.Prefix
	// Idle is how long a source is remembered after its last request once
	// its buckets are full again (forgetting it then changes nothing);
	// default DefaultSourceIdle.
	Idle time.Duration
	// MaxSources caps the sources remembered at once (default
	// DefaultMaxSources, about 30 MB). At the cap a source not remembered
	// shares one set of buckets with every other such source, until idle
	// sources are forgotten: memory stays bounded, a flood from more
	// addresses than the cap is limited as if it came from one, and the
	// sources already remembered keep their own buckets.
	MaxSources int
}

// Defaults of fwctl fleet serve's limits per source. A site gateway
// serving 64 recorders behind one NAT address sends at each poll one
// check-in per recorder, all at once, plus the reports its recorders
// queued: 256 at once covers four messages per recorder, and 5/s
// (18,000 an hour) is far above what 64 recorders send in an hour. A new
// address flooding keys gets at most 256 rows at once, then 5 a second.
const (
	DefaultWriteRate    = 5.0
	DefaultWriteBurst   = 256
	DefaultReadRate     = 5.0
	DefaultReadBurst    = 50
	DefaultAuthFailures = 5
	DefaultSourceIdle   = 5 * time.Minute
	DefaultMaxSources   = 65536
)

// DefaultExempt is the networks fwctl fleet serve never limits: loopback,
// the server's own host (the load generator in bench/fleet, a local proxy).
var DefaultExempt = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}

// DefaultLimits returns fwctl fleet serve's default limits.
func DefaultLimits() Limits {
	return Limits{WriteRate: DefaultWriteRate, WriteBurst: DefaultWriteBurst, ReadRate: DefaultReadRate, ReadBurst: DefaultReadBurst,
		AuthFailures: DefaultAuthFailures, Exempt: append([]netip.Prefix(nil), DefaultExempt...)}
}

// check refuses a limit that cannot be meant, naming fwctl fleet serve's
// flag for it.
func (l Limits) check() error {
	for _, c := range []struct {
		kind  string
		rate  float64
		burst int
	}{{"write", l.WriteRate, l.WriteBurst}, {"read", l.ReadRate, l.ReadBurst}} {
		if c.rate < 0 || math.IsNaN(c.rate) || math.IsInf(c.rate, 0) {
			return fmt.Errorf("%s rate %g (--%s-rate): use requests per second from one address, or 0 for no limit", c.kind, c.rate, c.kind)
		}
		if c.rate > 0 && c.burst < 1 {
			return fmt.Errorf("%s burst %d (--%s-burst) would refuse every %s: use at least 1, or --%s-rate 0 for no limit", c.kind, c.burst, c.kind, c.kind, c.kind)
		}
	}
	if l.AuthFailures < 0 {
		return fmt.Errorf("auth failures %d (--auth-failures): use wrong tokens per minute from one address, or 0 for no limit", l.AuthFailures)
	}
	return nil
}

// on tells whether any limit is set.
func (l Limits) on() bool { return l.WriteRate > 0 || l.ReadRate > 0 || l.AuthFailures > 0 }

// How often the source table is swept for idle sources, and how often a
// source over a limit is logged at most.
const (
	sweepEvery = time.Minute
	logEvery   = time.Minute
)

// sources is the table of source addresses and their buckets. Everything
// in it is guarded by mu: a request holds it for a few map and bucket
// operations.
type sources struct {
	lim Limits
	log logrus.FieldLogger

	mu       sync.Mutex
	m        map[netip.Addr]*source
	overflow source // shared by the sources beyond MaxSources
	swept    time.Time
	lines    *rate.Limiter // log lines about limited sources, all together: a flood from many addresses floods no log
}

// source is one address's buckets; a bucket is nil until first needed.
type source struct {
	write, read, auth *rate.Limiter
	seen              time.Time // last request
	logged            time.Time // last log line about it
	refused           int       // 429s since that line
}

func newSources(lim Limits, log logrus.FieldLogger) *sources {
	if lim.Idle <= 0 {
		lim.Idle = DefaultSourceIdle
	}
	if lim.MaxSources <= 0 {
		lim.MaxSources = DefaultMaxSources
	}
	return &sources{lim: lim, log: log, m: map[netip.Addr]*source{}, lines: rate.NewLimiter(1, 20)}
}

// key returns the source of a connection's remote address (host:port): the
// address itself for IPv4, its /64 for IPv6. exempt is true for an address
// in Limits.Exempt. An address that does not parse (not a TCP connection)
// is the zero Addr: such requests share one source.
func (t *sources) key(remote string) (key netip.Addr, exempt bool) {
	ap, err := netip.ParseAddrPort(remote)
	if err != nil {
		return netip.Addr{}, false
	}
	a := ap.Addr().Unmap()
	for _, p := range t.lim.Exempt {
		if p.Contains(a) {
			return a, true
		}
	}
	if a.Is6() {
		p, _ := a.Prefix(64)
		a = p.Addr()
	}
	return a, false
}

// get returns key's source, remembering it if there is room (the shared
// overflow source otherwise), and forgets idle sources once a sweepEvery.
// The caller holds mu.
func (t *sources) get(key netip.Addr, now time.Time) *source {
	if now.Sub(t.swept) >= sweepEvery {
		t.sweep(now)
	}
	s := t.m[key]
	if s == nil {
		if len(t.m) >= t.lim.MaxSources {
			s = &t.overflow
		} else {
			s = &source{}
			t.m[key] = s
		}
	}
	s.seen = now
	return s
}

// sweep forgets the sources idle for Limits.Idle whose buckets are full
// again. The caller holds mu.
func (t *sources) sweep(now time.Time) {
	t.swept = now
	for k, s := range t.m {
		if now.Sub(s.seen) >= t.lim.Idle && full(s.write, now) && full(s.read, now) && full(s.auth, now) {
			delete(t.m, k)
		}
	}
}

func full(l *rate.Limiter, now time.Time) bool {
	return l == nil || l.TokensAt(now) >= float64(l.Burst())
}

// bucket returns *b, made with r per second and burst at first use.
func bucket(b **rate.Limiter, r rate.Limit, burst int) *rate.Limiter {
	if *b == nil {
		*b = rate.NewLimiter(r, burst)
	}
	return *b
}

// retryAfter is how long until l holds one token, in whole seconds, at
// least 1.
func retryAfter(l *rate.Limiter, now time.Time) int {
	// In nanoseconds first: float rounding (1/(2/60.0) is a hair above
	// 30) stays below a nanosecond instead of adding a second.
	wait := time.Duration((1 - l.TokensAt(now)) / float64(l.Limit()) * float64(time.Second))
	return max(1, int((wait+time.Second-1)/time.Second))
}

// allow takes one request of remote's read or write bucket; over the
// limit it returns false and the seconds to wait.
func (t *sources) allow(remote string, write bool, now time.Time) (retry int, ok bool) {
	kind, r, burst := "read", t.lim.ReadRate, t.lim.ReadBurst
	if write {
		kind, r, burst = "write", t.lim.WriteRate, t.lim.WriteBurst
	}
	if r <= 0 {
		return 0, true
	}
	key, exempt := t.key(remote)
	if exempt {
		return 0, true
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.get(key, now)
	b := &s.read
	if write {
		b = &s.write
	}
	l := bucket(b, rate.Limit(r), burst)
	if l.AllowN(now, 1) {
		return 0, true
	}
	retry = retryAfter(l, now)
	t.refused(s, key, now, fmt.Sprintf("over the %s limit (%s, %d at once)", kind, perSecond(r), burst))
	return retry, false
}

// perSecond writes a rate for people: "5/s", or "1 every 1m0s" below 1/s.
func perSecond(r float64) string {
	if r >= 1 {
		return fmt.Sprintf("%g/s", r)
	}
	return "1 every " + time.Duration(float64(time.Second)/r).Round(time.Second).String()
}

// authAttempt is called before a request's token is compared. It takes
// one wrong-token allowance of remote's source and returns done, which
// the caller calls with whether the token was wrong: a right token gives
// the allowance back, so only wrong tokens count. Taking it before the
// comparison means concurrent guesses from one source cannot all be
// compared before the first is counted. When the source has none left it
// returns false and the seconds to wait: its token must not be compared.
func (t *sources) authAttempt(remote string, now time.Time) (done func(wrong bool), retry int, ok bool) {
	if t.lim.AuthFailures <= 0 {
		return func(bool) {}, 0, true
	}
	key, exempt := t.key(remote)
	if exempt {
		return func(bool) {}, 0, true
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.get(key, now)
	l := bucket(&s.auth, rate.Limit(float64(t.lim.AuthFailures)/60), t.lim.AuthFailures)
	res := l.ReserveN(now, 1)
	if res.DelayFrom(now) > 0 {
		res.CancelAt(now)
		retry = retryAfter(l, now)
		t.refused(s, key, now, fmt.Sprintf("over %d wrong admin tokens a minute", t.lim.AuthFailures))
		return nil, retry, false
	}
	return func(wrong bool) {
		if !wrong {
			res.CancelAt(now)
		}
	}, 0, true
}

// refused counts a 429 of s and logs it, at most once a logEvery per
// source (with the 429s since its last line) and a line a second over all
// sources. The caller holds mu.
func (t *sources) refused(s *source, key netip.Addr, now time.Time, why string) {
	s.refused++
	if now.Sub(s.logged) < logEvery || !t.lines.AllowN(now, 1) {
		return
	}
	from := key.String()
	switch {
	case s == &t.overflow:
		from = fmt.Sprintf("the sources beyond the table's %d (it is full; they share one set of buckets)", t.lim.MaxSources)
	case !key.IsValid():
		from = "a connection without an IP address"
	case key.Is6():
		from += "/64"
	}
	t.log.WithFields(logrus.Fields{"source": from, "refused": s.refused}).Warnf("requests %s answered 429", why)
	s.logged, s.refused = now, 0
}

// limit answers 429 for a request over its source's read or write limit
// before h sees it, and counts it.
func (s *Server) limit(h http.Handler) http.Handler {
	if s.sources == nil {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		write := r.Method != http.MethodGet && r.Method != http.MethodHead
		if retry, ok := s.sources.allow(r.RemoteAddr, write, s.Now()); !ok {
			s.count(r.Context(), fleet.CounterRateLimited)
			tooMany(w, retry, "too many requests from this address: nothing was read or stored", false)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// authAttempt is sources.authAttempt for r, or no limit; when r's source
// is over its wrong tokens it answers 429 itself (JSON for the admin API,
// text for the web page), counts it, and returns ok false.
func (s *Server) authAttempt(w http.ResponseWriter, r *http.Request, page bool) (done func(wrong bool), ok bool) {
	if s.sources == nil {
		return func(bool) {}, true
	}
	done, retry, ok := s.sources.authAttempt(r.RemoteAddr, s.Now())
	if ok {
		return done, true
	}
	s.count(r.Context(), fleet.CounterAuthLimited)
	tooMany(w, retry, "too many wrong tokens from this address: the token was not checked", page)
	return nil, false
}

// tooMany answers 429 with Retry-After and msg, in JSON like every answer
// of the APIs or, for the web page, in text.
func tooMany(w http.ResponseWriter, retry int, msg string, text bool) {
	w.Header().Set("Retry-After", strconv.Itoa(retry))
	msg = fmt.Sprintf("%s, retry in %d s", msg, retry)
	if text {
		http.Error(w, msg, http.StatusTooManyRequests)
		return
	}
	writeError(w, http.StatusTooManyRequests, msg)
}
