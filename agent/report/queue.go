package report

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/go-retryablehttp"
	"github.com/sirupsen/logrus"

	"github.com/fwagent/fwagent/internal/redact"
	"github.com/fwagent/fwagent/internal/retry"
	"github.com/fwagent/fwagent/internal/statefile"
)

// DefaultMax is the queue bound when Options.Max is not set.
const DefaultMax = 1000

// Options configure a Queue.
type Options struct {
	// URL receives the reports (POST, JSON). Empty: Enqueue and Flush do
	// nothing.
	URL string
	// Seal, when set, turns a report into the bytes queued and sent: the
	// fleet server's signed envelope (fleet.DeviceKey.SignReport), made
	// when the report is queued so that it verifies whenever it is
	// delivered. A 409 answer (the device waits for enrolment approval)
	// then keeps the report queued.
	Seal func(Report) ([]byte, error)
	// Token, if set, is sent as "Authorization: Bearer <token>". Never logged.
	Token string
	// Max bounds the queue (default DefaultMax); beyond it the oldest
	// reports are dropped and counted in the next report's Dropped field.
	Max int
	// Retry is how often one upload is retried after a transient failure,
	// and the pauses (the agent passes report.retry_max and the retry
	// section); the zero Policy sends each upload once. A report still not
	// delivered stays queued for the next Flush.
	Retry retry.Policy
	// HTTPClient sends the reports; nil builds one from Retry with 30s
	// per request.
	HTTPClient *retryablehttp.Client
	// Logger receives the queue's log lines (nil: discard).
	Logger logrus.FieldLogger
}

// Queue is a durable, bounded, ordered queue of reports in dir/reports/,
// one file per report. Its methods are safe for concurrent use.
type Queue struct {
	// Now is the clock for report times and file names.
	Now func() time.Time

	dir      string
	rejected string
	opt      Options
	client   *retryablehttp.Client
	log      logrus.FieldLogger

	mu      sync.Mutex // guards seq and the set of files
	seq     uint64
	flushMu sync.Mutex // one Flush at a time
}

var fileRe = regexp.MustCompile(`^(\d{16})-[0-9TZ.]+\.json$`)

// NewQueue opens (creating if needed) the queue in stateDir/reports/.
func NewQueue(stateDir string, opt Options) (*Queue, error) {
	if opt.Max <= 0 {
		opt.Max = DefaultMax
	}
	log := opt.Logger
	if log == nil {
		l := logrus.New()
		l.Out = io.Discard
		log = l
	}
	log = log.WithField("component", "report")
	q := &Queue{
		Now:      time.Now,
		dir:      filepath.Join(stateDir, "reports"),
		opt:      opt,
		client:   opt.HTTPClient,
		log:      log,
		rejected: filepath.Join(stateDir, "reports", "rejected"),
	}
	if q.client == nil {
		c := retryablehttp.NewClient()
		c.RetryMax = max(opt.Retry.Max, 0)
		c.RetryWaitMin = opt.Retry.WaitMin
		c.RetryWaitMax = max(opt.Retry.WaitMax, opt.Retry.WaitMin)
		c.Backoff = retry.Backoff
		c.HTTPClient.Timeout = 30 * time.Second
		c.ErrorHandler = retryablehttp.PassthroughErrorHandler
		c.Logger = leveled{log}
		q.client = c
	}
	if err := os.MkdirAll(q.rejected, 0o700); err != nil {
		return nil, fmt.Errorf("create report queue: %w", err)
	}
	names, err := q.list(q.dir)
	if err != nil {
		return nil, err
	}
	if n := len(names); n > 0 {
		q.seq = seqOf(names[n-1])
	}
	// Temporary files a crash left behind hold no accepted report.
	temps, _ := filepath.Glob(filepath.Join(q.dir, ".*"))
	for _, t := range temps {
		_ = os.Remove(t)
	}
	return q, nil
}

// list returns the queued file names in dir, oldest first.
func (q *Queue) list(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("read report queue: %w", err)
	}
	var names []string
	for _, e := range entries {
		if e.Type().IsRegular() && fileRe.MatchString(e.Name()) {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names) // fixed-width sequence first: name order is queue order
	return names, nil
}

func seqOf(name string) uint64 {
	m := fileRe.FindStringSubmatch(name)
	if m == nil {
		return 0
	}
	n, _ := strconv.ParseUint(m[1], 10, 64)
	return n
}

// Len returns the number of reports waiting.
func (q *Queue) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	names, _ := q.list(q.dir)
	return len(names)
}

// Enqueue stores r durably (written and fsynced before it returns). An empty
// ID or Time is filled in. When the queue is full, the oldest reports are
// dropped and their number is added to r.Dropped.
func (q *Queue) Enqueue(r Report) error {
	if q.opt.URL == "" {
		return nil
	}
	if r.ID == "" {
		r.ID = newID()
	}
	now := q.Now().UTC()
	if r.Time.IsZero() {
		r.Time = now
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	names, err := q.list(q.dir)
	if err != nil {
		return err
	}
	var drop []string
	if over := len(names) + 1 - q.opt.Max; over > 0 {
		drop = names[:over]
		for _, name := range drop {
			r.Dropped++
			var old Report
			if data, err := os.ReadFile(filepath.Join(q.dir, name)); err == nil && json.Unmarshal(data, &old) == nil {
				r.Dropped += old.Dropped
			}
		}
	}
	data, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("encode report: %w", err)
	}
	q.seq++
	name := fmt.Sprintf("%016d-%s.json", q.seq, now.Format("20060102T150405.000000000Z"))
	if q.opt.Seal != nil {
		sealed, serr := q.opt.Seal(r)
		if serr != nil {
			// Never a lost report: the server would refuse it unsigned,
			// so it is kept for support in rejected/.
			return q.keepUnsealed(name, data, serr)
		}
		data = sealed
	}
	if err := statefile.Write(filepath.Join(q.dir, name), data, 0o600); err != nil {
		q.seq--
		return fmt.Errorf("queue report: %w: check the state directory's disk space", err)
	}
	// The new report (which counts the drop) is safe on disk: only now the
	// oldest ones go.
	for _, old := range drop {
		if err := os.Remove(filepath.Join(q.dir, old)); err != nil && !errors.Is(err, os.ErrNotExist) {
			q.log.WithError(err).Warn("could not drop an old report")
		}
	}
	if len(drop) > 0 {
		_ = statefile.SyncDir(q.dir)
		q.log.WithField("dropped", len(drop)).Warnf("report queue full (%d): dropped the oldest reports; the count travels in the next report", q.opt.Max)
	}
	return nil
}

// Flush sends the queued reports in order and returns how many the server
// accepted. It stops at the first report that could not be delivered
// (unreachable server, 5xx, 408, 429): that report and the ones after it
// stay queued, and the error matches ErrUndelivered; 401 and 403 also stop
// delivery (a wrong token is no fault of the report). A report the server
// rejects for good (any other 4xx) is moved to reports/rejected/ and
// delivery goes on. A report file is deleted only after a 2xx answer.
func (q *Queue) Flush(ctx context.Context) (int, error) {
	if q.opt.URL == "" {
		return 0, nil
	}
	q.flushMu.Lock()
	defer q.flushMu.Unlock()
	q.mu.Lock()
	names, err := q.list(q.dir)
	q.mu.Unlock()
	if err != nil {
		return 0, err
	}
	sent := 0
	for _, name := range names {
		if err := ctx.Err(); err != nil {
			return sent, err
		}
		path := filepath.Join(q.dir, name)
		data, err := os.ReadFile(path)
		if errors.Is(err, os.ErrNotExist) {
			continue // dropped meanwhile
		}
		if err != nil {
			return sent, fmt.Errorf("read queued report: %w", err)
		}
		var r Report
		if err := json.Unmarshal(data, &r); err != nil {
			q.reject(name, fmt.Sprintf("unreadable report file: %v", err))
			continue
		}
		status, snippet, err := q.post(ctx, data)
		log := q.log.WithFields(logrus.Fields{"report_id": r.ID, "step": r.Step, "release_id": r.ReleaseID})
		switch {
		case err != nil:
			return sent, fmt.Errorf("%w: %v: it stays queued", ErrUndelivered, err)
		case status >= 200 && status < 300:
			if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
				return sent, fmt.Errorf("remove delivered report: %w", err)
			}
			sent++
			log.Debug("report delivered")
		case status == http.StatusUnauthorized || status == http.StatusForbidden:
			// Not this report's fault: the token is wrong for every report.
			return sent, fmt.Errorf("%w: server %s answered %d: check report.token; reports stay queued", ErrUndelivered, safeURL(q.opt.URL), status)
		case status == http.StatusRequestTimeout || status == http.StatusTooManyRequests || status >= 500 || status < 200 || (status >= 300 && status < 400),
			status == http.StatusConflict && q.opt.Seal != nil:
			return sent, fmt.Errorf("%w: server %s answered %d: it stays queued", ErrUndelivered, safeURL(q.opt.URL), status)
		default:
			log.WithField("status", status).Warnf("report server rejected a report (%d %s): kept in %s", status, snippet, q.rejected)
			q.reject(name, fmt.Sprintf("server answered %d", status))
		}
	}
	if sent > 0 {
		_ = statefile.SyncDir(q.dir)
	}
	return sent, nil
}

// post sends one report body and returns the status and the start of the
// response body.
func (q *Queue) post(ctx context.Context, body []byte) (int, string, error) {
	req, err := retryablehttp.NewRequestWithContext(ctx, http.MethodPost, q.opt.URL, body)
	if err != nil {
		return 0, "", fmt.Errorf("build request to %s: %v", safeURL(q.opt.URL), err)
	}
	req.Header.Set("Content-Type", "application/json")
	if q.opt.Token != "" {
		req.Header.Set("Authorization", "Bearer "+q.opt.Token)
	}
	resp, err := q.client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	head, _ := io.ReadAll(io.LimitReader(resp.Body, 200))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, string(bytes.TrimSpace(head)), nil
}

// keepUnsealed stores a report Seal refused, unsigned, in reports/rejected/
// (keeping at most Max there) and returns the error saying so.
func (q *Queue) keepUnsealed(name string, data []byte, serr error) error {
	if err := statefile.Write(filepath.Join(q.rejected, name), data, 0o600); err != nil {
		return fmt.Errorf("sign the report for the fleet server: %w; keeping it unsigned failed too (%v): check the device key and the state directory's disk space", serr, err)
	}
	q.pruneRejected()
	return fmt.Errorf("sign the report for the fleet server: %w: it is kept unsigned in %s for support; check the device key in the state directory", serr, q.rejected)
}

// pruneRejected removes the oldest reports of reports/rejected/ beyond Max.
func (q *Queue) pruneRejected() {
	if names, err := q.list(q.rejected); err == nil && len(names) > q.opt.Max {
		for _, old := range names[:len(names)-q.opt.Max] {
			_ = os.Remove(filepath.Join(q.rejected, old))
		}
	}
}

// reject moves a queued report to reports/rejected/, keeping at most Max.
func (q *Queue) reject(name, why string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if err := os.Rename(filepath.Join(q.dir, name), filepath.Join(q.rejected, name)); err != nil {
		q.log.WithError(err).Warn("could not move a rejected report aside")
		return
	}
	q.log.WithField("file", name).Warnf("report moved to rejected/: %s", why)
	q.pruneRejected()
	_ = statefile.SyncDir(q.dir)
	_ = statefile.SyncDir(q.rejected)
}

// safeURL renders a URL for logs and errors: no user name, no password.
func safeURL(s string) string {
	if _, err := url.Parse(s); err != nil {
		return "<unparsable url>"
	}
	return redact.URL(s)
}

// leveled adapts a logrus logger to retryablehttp.LeveledLogger; retry
// chatter goes to debug, failures to warn. URLs are redacted.
type leveled struct{ l logrus.FieldLogger }

func (a leveled) fields(kv []interface{}) logrus.FieldLogger {
	f := logrus.Fields{}
	for i := 0; i+1 < len(kv); i += 2 {
		k := fmt.Sprint(kv[i])
		v := kv[i+1]
		if u, ok := v.(*url.URL); ok && u != nil {
			v = redact.URL(u.String())
		} else if s, ok := v.(string); ok && k == "url" {
			v = safeURL(s)
		}
		f[k] = v
	}
	return a.l.WithFields(f)
}

func (a leveled) Error(msg string, kv ...interface{}) { a.fields(kv).Warn(msg) }
func (a leveled) Warn(msg string, kv ...interface{})  { a.fields(kv).Warn(msg) }
func (a leveled) Info(msg string, kv ...interface{})  { a.fields(kv).Debug(msg) }
func (a leveled) Debug(msg string, kv ...interface{}) { a.fields(kv).Debug(msg) }

var _ retryablehttp.LeveledLogger = leveled{}
