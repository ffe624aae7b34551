package server

import (
	"container/list"
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
// /healthz), a tighter one for wrong admin or viewer tokens, and networks
// that are never limited. A request over a limit is answered 429 with
// Retry-After before any handler reads it: nothing is stored. A request
// with the admin token is never limited: a pause gets through whoever
// shares the admin's address.
//
// The source is the connection's remote address (never a header such as
// X-Forwarded-For): an IPv4 address, or an IPv6 address's /64 (the block
// one host or site usually holds), which must also fit in the buckets its
// /48 shares with every other /64 of it, Slash48Sources times a source's.
// The zero value limits nothing; fwctl fleet serve starts from
// DefaultLimits.
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
	// send per minute (as many at once). Past it, a wrong token from that
	// source is answered 429 instead of 401 and logged, until a
	// minute/AuthFailures has passed. A right token is always compared
	// and served, from any source: a guesser cannot lock the admin out.
	// What makes guessing hopeless is the token's length (fwctl fleet
	// serve wants 16 bytes or more) and the read and write limits. 0: no
	// limit.
	AuthFailures int
	// Exempt lists networks whose sources are never limited, not even for
	// wrong tokens (the server's own host, a trusted proxy).
	Exempt []netip.Prefix
	// Idle is how long a source is remembered after its last request once
	// its buckets are full again (forgetting it then changes nothing);
	// default DefaultSourceIdle.
	Idle time.Duration
	// MaxSources caps the sources (IPv4 addresses, IPv6 /64s and /48s)
	// remembered at once (default DefaultMaxSources, about 30 MB). At the
	// cap a new source takes the place of the one seen least recently,
	// with buckets of its own: memory stays bounded, and a flood of
	// sources keeping the table full refuses no one else. A source
	// forgotten that way before its buckets were full again gets full
	// ones when it comes back.
	MaxSources int
}

// Slash48Sources is how many sources' limits the /64s of one IPv6 /48
// share: one customer holding a /56 or a /48 gets at most 16 times the
// limits of one address, not 256 or 65,536 times.
const Slash48Sources = 16

// Defaults of fwctl fleet serve's limits per source. A site gateway
// serving 64 recorders behind one NAT address sends at each poll one
// check-in per recorder, all at once, plus the reports its recorders
// queued: 256 at once covers four messages per recorder, and 5/s
// (18,000 an hour) is far above what 64 recorders send in an hour. A new
// IPv4 address or IPv6 /64 flooding keys gets at most 256 rows at once,
// then 5 a second; a whole IPv6 /48, Slash48Sources times that.
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

// sources is the table of sources and their buckets. Everything in it is
// guarded by mu: a request holds it for a few map and bucket operations.
type sources struct {
	lim Limits
	log logrus.FieldLogger

	mu    sync.Mutex
	m     map[netip.Prefix]*source
	order *list.List // of *source, from the most recently seen (Front) to the least (Back)
	swept time.Time
	lines *rate.Limiter // log lines about limited sources, all together: a flood from many addresses floods no log
}

// source is one source's buckets; a bucket is nil until first needed.
type source struct {
	key               netip.Prefix
	write, read, auth *rate.Limiter
	seen              time.Time     // last request
	logged            time.Time     // last log line about it
	refused           int           // 429s since that line
	elem              *list.Element // its place in sources.order
}

func newSources(lim Limits, log logrus.FieldLogger) *sources {
	if lim.Idle <= 0 {
		lim.Idle = DefaultSourceIdle
	}
	if lim.MaxSources <= 0 {
		lim.MaxSources = DefaultMaxSources
	}
	return &sources{lim: lim, log: log, m: map[netip.Prefix]*source{}, order: list.New(), lines: rate.NewLimiter(1, 20)}
}

// keys returns the sources of a connection's remote address (host:port):
// an IPv4 address (as a /32), or an IPv6 address's /48 and its /64, in
// that order: take asks the /48 first, so a request the /48 refuses
// never makes (or refreshes) a /64 entry. Otherwise refused requests,
// which cost nothing, could fill the table with /64s and push out the
// sources whose buckets were empty. exempt is true for an address in Limits.Exempt (an IPv6
// zone such as %eth0 is ignored). An address that does not parse (not a
// TCP connection) is the zero Prefix: such requests share one source.
func (t *sources) keys(remote string) (keys []netip.Prefix, exempt bool) {
	ap, err := netip.ParseAddrPort(remote)
	if err != nil {
		return []netip.Prefix{{}}, false
	}
	a := ap.Addr().Unmap().WithZone("")
	for _, p := range t.lim.Exempt {
		if p.Contains(a) {
			return nil, true
		}
	}
	if !a.Is6() {
		return []netip.Prefix{netip.PrefixFrom(a, 32)}, false
	}
	p64, _ := a.Prefix(64)
	p48, _ := a.Prefix(48)
	return []netip.Prefix{p48, p64}, false
}

// share is how many sources' limits key's buckets hold: Slash48Sources
// for an IPv6 /48, else 1.
func share(key netip.Prefix) int {
	if key.Addr().Is6() && key.Bits() == 48 {
		return Slash48Sources
	}
	return 1
}

// get returns key's source, remembered as the most recently seen; at
// MaxSources a new one takes the place of the least recently seen. It
// forgets idle sources once a sweepEvery. The caller holds mu.
func (t *sources) get(key netip.Prefix, now time.Time) *source {
	if now.Sub(t.swept) >= sweepEvery {
		t.sweep(now)
	}
	s := t.m[key]
	if s == nil {
		if len(t.m) >= t.lim.MaxSources {
			t.forget(t.order.Back().Value.(*source))
		}
		s = &source{key: key}
		s.elem = t.order.PushFront(s)
		t.m[key] = s
	} else {
		t.order.MoveToFront(s.elem)
	}
	s.seen = now
	return s
}

// forget removes s from the table. The caller holds mu.
func (t *sources) forget(s *source) {
	t.order.Remove(s.elem)
	delete(t.m, s.key)
}

// sweep forgets the sources idle for Limits.Idle whose buckets are full
// again, from the least recently seen on. The caller holds mu.
func (t *sources) sweep(now time.Time) {
	t.swept = now
	for e := t.order.Back(); e != nil && now.Sub(e.Value.(*source).seen) >= t.lim.Idle; {
		s, prev := e.Value.(*source), e.Prev()
		if full(s.write, now) && full(s.read, now) && full(s.auth, now) {
			t.forget(s)
		}
		e = prev
	}
}

func full(l *rate.Limiter, now time.Time) bool {
	return l == nil || l.TokensAt(now) >= float64(l.Burst())
}

// retryAfter is how long until l holds one token, in whole seconds, at
// least 1.
func retryAfter(l *rate.Limiter, now time.Time) int {
	// In nanoseconds first: float rounding (1/(2/60.0) is a hair above
	// 30) stays below a nanosecond instead of adding a second.
	wait := time.Duration((1 - l.TokensAt(now)) / float64(l.Limit()) * float64(time.Second))
	return max(1, int((wait+time.Second-1)/time.Second))
}

// bucketKind is one of a source's buckets: which, its rate and burst for
// one source, and how a log line says a source is over it.
type bucketKind struct {
	pick  func(*source) **rate.Limiter
	rate  float64
	burst int
	over  func(rate float64, burst int) string
}

// take takes one request from kind's bucket of each of keys (made at
// first use, share(key) times kind's rate and burst). When one has none
// left it takes nothing from any, counts and logs the refusal, and
// returns false and the seconds to wait. The caller holds mu.
func (t *sources) take(keys []netip.Prefix, kind bucketKind, now time.Time) (retry int, ok bool) {
	var taken [2]*rate.Reservation
	for i, key := range keys {
		s := t.get(key, now)
		n := share(key)
		b := kind.pick(s)
		if *b == nil {
			*b = rate.NewLimiter(rate.Limit(kind.rate*float64(n)), kind.burst*n)
		}
		res := (*b).ReserveN(now, 1)
		if res.DelayFrom(now) == 0 {
			taken[i] = res
			continue
		}
		res.CancelAt(now)
		for _, r := range taken[:i] {
			r.CancelAt(now)
		}
		t.refused(s, now, kind.over(kind.rate*float64(n), kind.burst*n))
		return retryAfter(*b, now), false
	}
	return 0, true
}

// allow takes one request of remote's read or write buckets; over the
// limit it returns false and the seconds to wait.
func (t *sources) allow(remote string, write bool, now time.Time) (retry int, ok bool) {
	kind := bucketKind{pick: func(s *source) **rate.Limiter { return &s.read }, rate: t.lim.ReadRate, burst: t.lim.ReadBurst,
		over: func(r float64, burst int) string {
			return fmt.Sprintf("over the read limit (%s, %d at once)", perSecond(r), burst)
		}}
	if write {
		kind = bucketKind{pick: func(s *source) **rate.Limiter { return &s.write }, rate: t.lim.WriteRate, burst: t.lim.WriteBurst,
			over: func(r float64, burst int) string {
				return fmt.Sprintf("over the write limit (%s, %d at once)", perSecond(r), burst)
			}}
	}
	if kind.rate <= 0 {
		return 0, true
	}
	return t.takeFrom(remote, kind, now)
}

// takeFrom takes one request of kind's buckets of remote's sources,
// unless remote is exempt.
func (t *sources) takeFrom(remote string, kind bucketKind, now time.Time) (retry int, ok bool) {
	keys, exempt := t.keys(remote)
	if exempt {
		return 0, true
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.take(keys, kind, now)
}

// perSecond writes a rate for people: "5/s", or "1 every 1m0s" below 1/s.
func perSecond(r float64) string {
	if r >= 1 {
		return fmt.Sprintf("%g/s", r)
	}
	return "1 every " + time.Duration(float64(time.Second)/r).Round(time.Second).String()
}

// wrongToken counts a wrong admin or viewer token from remote, after the
// comparison: within the source's allowance it returns true (the caller
// answers 401), past it false and the seconds to wait (429). A right
// token is never counted, so a guesser sharing the admin's address
// cannot lock the admin out.
func (t *sources) wrongToken(remote string, now time.Time) (retry int, ok bool) {
	if t.lim.AuthFailures <= 0 {
		return 0, true
	}
	return t.takeFrom(remote, bucketKind{pick: func(s *source) **rate.Limiter { return &s.auth },
		rate: float64(t.lim.AuthFailures) / 60, burst: t.lim.AuthFailures,
		over: func(_ float64, burst int) string {
			return fmt.Sprintf("over %d wrong admin or viewer tokens a minute", burst)
		}}, now)
}

// refused counts a 429 of s and logs it, at most once a logEvery per
// source (with the 429s since its last line) and a line a second over all
// sources. The caller holds mu.
func (t *sources) refused(s *source, now time.Time, why string) {
	s.refused++
	if now.Sub(s.logged) < logEvery || !t.lines.AllowN(now, 1) {
		return
	}
	from := s.key.String()
	switch {
	case !s.key.IsValid():
		from = "a connection without an IP address"
	case s.key.IsSingleIP():
		from = s.key.Addr().String()
	}
	t.log.WithFields(logrus.Fields{"source": from, "refused": s.refused}).Warnf("requests %s answered 429", why)
	s.logged, s.refused = now, 0
}

// limit answers 429 for a request over its source's read or write limit
// before h sees it, and counts it. A request with the admin token is not
// limited.
func (s *Server) limit(h http.Handler) http.Handler {
	if s.sources == nil {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		write := r.Method != http.MethodGet && r.Method != http.MethodHead
		if tok := requestToken(r, true); tok != "" && s.roleOf(tok) == roleAdmin {
			h.ServeHTTP(w, r)
			return
		}
		if retry, ok := s.sources.allow(r.RemoteAddr, write, s.Now()); !ok {
			s.count(r.Context(), fleet.CounterRateLimited)
			tooMany(w, retry, "too many requests from this address: nothing was read or stored", false)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// wrongToken counts r's wrong token against its source; past the source's
// allowance it answers 429 itself (JSON for the admin API, text for the
// web page), counts it and returns false; within it, true: the caller
// answers 401.
func (s *Server) wrongToken(w http.ResponseWriter, r *http.Request, page bool) bool {
	if s.sources == nil {
		return true
	}
	retry, ok := s.sources.wrongToken(r.RemoteAddr, s.Now())
	if ok {
		return true
	}
	s.count(r.Context(), fleet.CounterAuthLimited)
	tooMany(w, retry, "too many wrong tokens from this address: this one is wrong too", page)
	return false
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
