package support

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"iter"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/sirupsen/logrus"
	"gopkg.in/natefinch/lumberjack.v2"

	"github.com/fwagent/fwagent/internal/redact"
)

// LogFile is the name of the active log file in the log directory; rotated
// files are named fwagent-<time>.log, compressed ones fwagent-<time>.log.gz.
const LogFile = "fwagent.log"

// Field names every update attempt's log lines carry. They are stable: log
// queries, dashboards and support scripts rely on them.
const (
	FieldRelease = "release" // release ID from the manifest
	FieldAttempt = "attempt" // attempt ID, one per try of a release
	FieldStep    = "step"    // journal step name (state machine state)
	FieldCode    = "code"    // stable reason code of a refusal or failure
)

// Defaults of LogOptions.
const (
	DefaultRetentionDays = 30
	DefaultMaxSizeMB     = 10
)

// LogOptions configures NewLogger.
type LogOptions struct {
	Dir           string    // log directory; empty: no file, JSON (or text on a terminal) to Stderr
	Level         string    // logrus level name; empty: info
	MaxSizeMB     int       // rotate when the file reaches this size; 0: DefaultMaxSizeMB
	RetentionDays int       // delete rotated files older than this; 0: DefaultRetentionDays
	MaxBackups    int       // keep at most this many rotated files; 0: no count limit
	Stderr        io.Writer // where readable text goes; nil: no stderr output
	Terminal      bool      // Stderr is a terminal: write readable text there
	// RotateEvery rotates a non-empty active file this often, so that
	// RetentionDays (which applies to rotated files only) also bounds how
	// long a quiet agent keeps a line; 0: DefaultRotateEvery.
	RotateEvery time.Duration
	// RotateTicks, when set, replaces the RotateEvery ticker: each value
	// received rotates the active file (an injected clock for tests).
	RotateTicks <-chan time.Time
	// Now is the clock that stamps log lines and decides which rotated
	// files have outlived RetentionDays; nil: time.Now. (lumberjack's own
	// age-based cleanup reads the wall clock and cannot be injected: it is
	// not used.)
	Now func() time.Time

	noCompress bool // tests: no asynchronous compression of rotated files
}

// DefaultRotateEvery is how often the active log file is rotated when it is
// not empty, whatever its size.
const DefaultRotateEvery = 24 * time.Hour

// NewLogger returns a logrus logger writing JSON lines to Dir/fwagent.log,
// rotated by size and once a day (RotateEvery), rotated files expiring after
// RetentionDays, so no line outlives the retention by more than a day; plus
// readable text on
// Stderr when Terminal is set. Secrets are scrubbed from every line written
// (see Redact); personal data stays in the local log. Close the returned
// io.Closer on shutdown.
func NewLogger(opts LogOptions) (*logrus.Logger, io.Closer, error) {
	level := logrus.InfoLevel
	if opts.Level != "" {
		l, err := logrus.ParseLevel(opts.Level)
		if err != nil {
			return nil, nil, fmt.Errorf("log.level %q is not a level: use one of panic, fatal, error, warn, info, debug, trace", opts.Level)
		}
		level = l
	}
	if opts.MaxSizeMB < 0 || opts.RetentionDays < 0 || opts.MaxBackups < 0 || opts.RotateEvery < 0 {
		return nil, nil, errors.New("log.max_size_mb, log.retention_days, max backups and the rotation interval must not be negative")
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	log := logrus.New()
	log.SetLevel(level)
	if opts.Now != nil {
		log.AddHook(clockHook{now})
	}
	text := &logrus.TextFormatter{FullTimestamp: true, TimestampFormat: time.RFC3339, ForceColors: false, DisableColors: true}
	if opts.Dir == "" {
		out := opts.Stderr
		if out == nil {
			out = io.Discard
		}
		log.SetOutput(out)
		if opts.Terminal {
			log.SetFormatter(secretScrubber{text})
		} else {
			log.SetFormatter(secretScrubber{jsonFormatter()})
		}
		return log, nopCloser{}, nil
	}
	if err := os.MkdirAll(opts.Dir, 0o750); err != nil {
		return nil, nil, fmt.Errorf("create log directory: %w: check log.dir and its permissions", err)
	}
	size, days := opts.MaxSizeMB, opts.RetentionDays
	if size == 0 {
		size = DefaultMaxSizeMB
	}
	if days == 0 {
		days = DefaultRetentionDays
	}
	// Rotated files expire by our clock (expire), not lumberjack's MaxAge.
	file := &lumberjack.Logger{
		Filename:   filepath.Join(opts.Dir, LogFile),
		MaxSize:    size,
		MaxBackups: opts.MaxBackups,
		Compress:   !opts.noCompress,
	}
	expire := func() {
		if err := ExpireLogs(opts.Dir, now().AddDate(0, 0, -days)); err != nil {
			log.WithError(err).Warn("cannot remove expired log files: old lines may outlive log.retention_days")
		}
	}
	log.SetOutput(file)
	log.SetFormatter(secretScrubber{jsonFormatter()})
	if opts.Terminal && opts.Stderr != nil {
		log.AddHook(&stderrHook{w: opts.Stderr, f: secretScrubber{text}})
	}
	expire()
	ticks, stopTicker := opts.RotateTicks, func() {}
	if ticks == nil {
		every := opts.RotateEvery
		if every == 0 {
			every = DefaultRotateEvery
		}
		t := time.NewTicker(every)
		ticks, stopTicker = t.C, t.Stop
	}
	rf := &rotatingFile{Logger: file, expire: expire, stop: make(chan struct{}), done: make(chan struct{})}
	go rf.run(ticks, stopTicker, log)
	return log, rf, nil
}

// rotatingFile rotates the active log file on every tick until closed:
// lumberjack expires rotated files only, so without this a quiet agent's
// fwagent.log would keep its lines past the retention.
type rotatingFile struct {
	*lumberjack.Logger
	expire     func() // removes rotated files older than the retention
	stop, done chan struct{}
	once       sync.Once
}

func (r *rotatingFile) run(ticks <-chan time.Time, stopTicker func(), log *logrus.Logger) {
	defer close(r.done)
	defer stopTicker()
	for {
		select {
		case <-r.stop:
			return
		case <-ticks:
			if st, err := os.Stat(r.Filename); err == nil && st.Size() > 0 {
				if err := r.Rotate(); err != nil {
					log.WithError(err).Warn("cannot rotate the log file: old lines may outlive log.retention_days")
				}
			}
			r.expire()
		}
	}
}

// Close stops the rotation and closes the file.
func (r *rotatingFile) Close() error {
	r.once.Do(func() {
		close(r.stop)
		<-r.done
	})
	return r.Logger.Close()
}

// rotatedTimeFormat is the time lumberjack puts into rotated file names
// (fwagent-2006-01-02T15-04-05.000.log), in UTC.
const rotatedTimeFormat = "2006-01-02T15-04-05.000"

// ExpireLogs removes the rotated log files in dir (also compressed ones)
// whose rotation time, read from the name, is before cutoff. The active
// file and files with other names stay.
func ExpireLogs(dir string, cutoff time.Time) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	var errs []error
	for _, e := range ents {
		t, ok := rotatedTime(e.Name())
		if !ok || !e.Type().IsRegular() || !t.Before(cutoff) {
			continue
		}
		if err := os.Remove(filepath.Join(dir, e.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// rotatedTime reads the rotation time from a rotated log file's name.
func rotatedTime(name string) (time.Time, bool) {
	ts, ok := strings.CutPrefix(name, "fwagent-")
	if !ok {
		return time.Time{}, false
	}
	ts = strings.TrimSuffix(ts, ".gz")
	if ts, ok = strings.CutSuffix(ts, ".log"); !ok {
		return time.Time{}, false
	}
	t, err := time.ParseInLocation(rotatedTimeFormat, ts, time.UTC)
	return t, err == nil
}

// SecretHook removes credentials from an entry's message and fields
// (redact.Secrets; URLs lose their user information) before any formatter
// sees it. The logger NewLogger returns scrubs every formatted line anyway;
// the agent adds this hook to whatever logger it is given, so that a logger
// built elsewhere cannot write a credential either.
type SecretHook struct{}

// Levels returns every level.
func (SecretHook) Levels() []logrus.Level { return logrus.AllLevels }

// Fire scrubs e in place (logrus hands hooks a copy of the fields).
func (SecretHook) Fire(e *logrus.Entry) error {
	e.Message = redact.Secrets(e.Message)
	for k, v := range e.Data {
		switch v := v.(type) {
		case string:
			e.Data[k] = redact.Secrets(v)
		case error:
			// Formatters print an error as its message: same output.
			e.Data[k] = redact.Secrets(v.Error())
		case *url.URL:
			if v != nil {
				e.Data[k] = redact.URL(v.String())
			}
		}
	}
	return nil
}

// clockHook stamps every entry with an injected clock (LogOptions.Now).
type clockHook struct{ now func() time.Time }

func (clockHook) Levels() []logrus.Level { return logrus.AllLevels }

func (h clockHook) Fire(e *logrus.Entry) error {
	e.Time = h.now()
	return nil
}

// jsonFormatter writes JSON lines without HTML escaping: an escaped
// "\u003cpassword\u003e" would hide XML secrets from the scrubber.
func jsonFormatter() *logrus.JSONFormatter {
	return &logrus.JSONFormatter{TimestampFormat: time.RFC3339Nano, DisableHTMLEscape: true}
}

type nopCloser struct{}

func (nopCloser) Close() error { return nil }

// secretScrubber removes secrets from each formatted line; the local log may
// hold personal data (it never leaves the device unredacted) but no secrets.
type secretScrubber struct{ inner logrus.Formatter }

func (s secretScrubber) Format(e *logrus.Entry) ([]byte, error) {
	b, err := s.inner.Format(e)
	if err != nil {
		return nil, err
	}
	return RedactBytes(b, true), nil
}

// stderrHook writes a readable copy of each entry to a terminal.
type stderrHook struct {
	mu sync.Mutex
	w  io.Writer
	f  logrus.Formatter
}

func (h *stderrHook) Levels() []logrus.Level { return logrus.AllLevels }

func (h *stderrHook) Fire(e *logrus.Entry) error {
	b, err := h.f.Format(e)
	if err != nil {
		return err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	_, err = h.w.Write(b)
	return err
}

// IsTerminal reports whether f is a character device (a terminal), for
// LogOptions.Terminal.
func IsTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// Query selects log entries; zero fields match everything.
type Query struct {
	Since   time.Time // entries at or after this time
	Release string    // entries whose release field equals this
	Attempt string    // entries whose attempt field equals this
	Device  string    // entries whose device field equals this (a site's recorder name)
}

// LogEntry is one parsed log line.
type LogEntry struct {
	Time   time.Time
	Level  string
	Msg    string
	Fields map[string]any // every other key of the JSON line
	File   string         // base name of the file it came from
	Raw    []byte         // the line as stored, without the newline
}

// Match reports whether e satisfies q. Lines that are not JSON match only a
// query without conditions.
func (q Query) Match(e LogEntry) bool {
	if !q.Since.IsZero() && (e.Time.IsZero() || e.Time.Before(q.Since)) {
		return false
	}
	if q.Release != "" && fmt.Sprint(e.Fields[FieldRelease]) != q.Release {
		return false
	}
	if q.Attempt != "" && fmt.Sprint(e.Fields[FieldAttempt]) != q.Attempt {
		return false
	}
	if q.Device != "" && !strings.EqualFold(fmt.Sprint(e.Fields["device"]), q.Device) {
		return false
	}
	return true
}

// LogFiles lists the log files in dir, oldest first and the active file last:
// rotated files sort by the timestamp lumberjack puts in their names.
func LogFiles(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var rotated []string
	active := ""
	for _, e := range ents {
		if !e.Type().IsRegular() {
			continue
		}
		name := e.Name()
		switch {
		case name == LogFile:
			active = name
		case strings.HasPrefix(name, "fwagent-") && (strings.HasSuffix(name, ".log") || strings.HasSuffix(name, ".log.gz")):
			rotated = append(rotated, name)
		}
	}
	sort.Slice(rotated, func(i, j int) bool {
		return strings.TrimSuffix(rotated[i], ".gz") < strings.TrimSuffix(rotated[j], ".gz")
	})
	if active != "" {
		rotated = append(rotated, active)
	}
	out := make([]string, len(rotated))
	for i, n := range rotated {
		out[i] = filepath.Join(dir, n)
	}
	return out, nil
}

// openLog opens a log file, decompressing .gz files.
func openLog(path string) (io.ReadCloser, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	if !strings.HasSuffix(path, ".gz") {
		return f, nil
	}
	zr, err := gzip.NewReader(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", filepath.Base(path), err)
	}
	return struct {
		io.Reader
		io.Closer
	}{zr, f}, nil
}

// ReadLogs yields the entries of every log file in dir (rotated files, also
// compressed ones, then the active file) that match q, in file order. A
// missing directory yields nothing; an unreadable file yields an error and
// the iteration goes on with the next file.
func ReadLogs(dir string, q Query) iter.Seq2[LogEntry, error] {
	return func(yield func(LogEntry, error) bool) {
		files, err := LogFiles(dir)
		if err != nil {
			if !errors.Is(err, fs.ErrNotExist) {
				yield(LogEntry{}, fmt.Errorf("read log directory: %w", err))
			}
			return
		}
		for _, path := range files {
			if !readLogFile(path, q, yield) {
				return
			}
		}
	}
}

func readLogFile(path string, q Query, yield func(LogEntry, error) bool) bool {
	rc, err := openLog(path)
	if err != nil {
		return yield(LogEntry{}, fmt.Errorf("read log: %w", err))
	}
	defer rc.Close()
	sc := bufio.NewScanner(rc)
	sc.Buffer(make([]byte, 64*1024), 4*1024*1024)
	name := filepath.Base(path)
	for sc.Scan() {
		line := bytes.TrimRight(sc.Bytes(), "\r")
		if len(line) == 0 {
			continue
		}
		e := ParseLogLine(line)
		e.File = name
		if !q.Match(e) {
			continue
		}
		if !yield(e, nil) {
			return false
		}
	}
	if err := sc.Err(); err != nil {
		return yield(LogEntry{}, fmt.Errorf("read log %s: %w", name, err))
	}
	return true
}

// ParseLogLine parses one JSON log line; a line that is not a JSON object
// comes back with Msg set to the line and no time.
func ParseLogLine(line []byte) LogEntry {
	raw := append([]byte(nil), line...)
	var m map[string]any
	// Numbers stay as written (json.Number): a byte count of 200000000
	// prints as 200000000, not 2e+08.
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil || m == nil {
		return LogEntry{Msg: string(raw), Raw: raw}
	}
	e := LogEntry{Raw: raw, Fields: map[string]any{}}
	for k, v := range m {
		switch k {
		case "time":
			if s, ok := v.(string); ok {
				if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
					e.Time = t
					continue
				}
			}
			e.Fields[k] = v
		case "level":
			e.Level = fmt.Sprint(v)
		case "msg":
			e.Msg = fmt.Sprint(v)
		default:
			e.Fields[k] = v
		}
	}
	return e
}

// FormatLogEntry renders e as one readable line: time, level, message, then
// release, attempt, step and code, then the other fields sorted by key.
func FormatLogEntry(e LogEntry) string {
	var b strings.Builder
	if !e.Time.IsZero() {
		b.WriteString(e.Time.Format(time.RFC3339))
		b.WriteByte(' ')
	}
	if e.Level != "" {
		fmt.Fprintf(&b, "%-5s ", strings.ToUpper(e.Level))
	}
	b.WriteString(e.Msg)
	first := []string{FieldRelease, FieldAttempt, FieldStep, FieldCode}
	keys := make([]string, 0, len(e.Fields))
	for k := range e.Fields {
		if !contains(first, k) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range append(first, keys...) {
		v, ok := e.Fields[k]
		if !ok {
			continue
		}
		s := formatValue(v)
		if strings.ContainsAny(s, " \t\"=") || s == "" {
			s = fmt.Sprintf("%q", s)
		}
		fmt.Fprintf(&b, " %s=%s", k, s)
	}
	return b.String()
}

func formatValue(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case nil:
		return "null"
	case map[string]any, []any:
		b, err := json.Marshal(v)
		if err != nil {
			return fmt.Sprint(v)
		}
		return string(b)
	default:
		return fmt.Sprint(v)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
