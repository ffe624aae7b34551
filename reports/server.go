package reports

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/sirupsen/logrus"
)

// Path is the URL path the server receives reports on: the agent's
// report.url is http(s)://HOST:PORT/v1/reports.
const Path = "/v1/reports"

// HealthPath answers 200 while the server can write reports, 503 otherwise.
const HealthPath = "/healthz"

// DefaultMaxBody bounds a report body when ServerOptions.MaxBody is 0.
const DefaultMaxBody = 64 << 10

// MinTokenLen is the shortest bearer token NewServer accepts.
const MinTokenLen = 16

// ServerOptions configure a Server.
type ServerOptions struct {
	// Token is the bearer token every POST must carry (required, at least
	// MinTokenLen bytes).
	Token string
	// MaxBody bounds a request body in bytes (default DefaultMaxBody).
	MaxBody int64
	// Logger receives one line per accepted or refused report (nil: discard).
	Logger logrus.FieldLogger
}

// Server receives the agents' reports on POST /v1/reports and appends each
// accepted one as a line of JSON to its file. A 2xx answer means the line is
// written in full and fsynced; concurrent requests are serialized. It is an
// http.Handler; Close releases the file.
type Server struct {
	// Now is the clock for the received time (default time.Now).
	Now func() time.Time

	path     string
	tokenSum [sha256.Size]byte
	maxBody  int64
	log      logrus.FieldLogger
	repaired int64

	mu     sync.Mutex // serializes writes; guards f and broken
	f      *os.File
	broken error // set when the file can no longer be trusted to grow whole lines
}

// NewServer opens (creating it if needed) the reports file at path for
// appending, locks it against a second server, and repairs a partial last
// line left by a crash: it is terminated with a newline, so the lines
// appended after it stay whole and readers skip the broken one.
func NewServer(path string, opt ServerOptions) (*Server, error) {
	if opt.Token == "" {
		return nil, fmt.Errorf("%w: give the token the agents send (report.token)", ErrNoToken)
	}
	if len(opt.Token) < MinTokenLen {
		return nil, fmt.Errorf("the bearer token is %d bytes long, use at least %d (for example `openssl rand -hex 32`)", len(opt.Token), MinTokenLen)
	}
	if opt.MaxBody <= 0 {
		opt.MaxBody = DefaultMaxBody
	}
	log := opt.Logger
	if log == nil {
		l := logrus.New()
		l.Out = io.Discard
		log = l
	}
	_, statErr := os.Stat(path)
	created := errors.Is(statErr, os.ErrNotExist)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open the reports file: %w", err)
	}
	s := &Server{Now: time.Now, path: path, tokenSum: sha256.Sum256([]byte(opt.Token)), maxBody: opt.MaxBody, log: log, f: f}
	if err := lockFile(f); err != nil {
		f.Close()
		return nil, err
	}
	if created {
		if err := syncDir(filepath.Dir(path)); err != nil {
			f.Close()
			return nil, err
		}
	}
	if s.repaired, err = repairTail(f); err != nil {
		f.Close()
		return nil, err
	}
	if s.repaired > 0 {
		log.WithField("bytes", s.repaired).Warn("the reports file ended with a partial line (a crash during a write?): terminated it so later lines stay whole; readers skip it")
	}
	return s, nil
}

// Repaired returns the length of the partial last line NewServer found and
// terminated (0: the file was whole).
func (s *Server) Repaired() int64 { return s.repaired }

// Close stops writing and releases the file; later requests get 503.
func (s *Server) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		return nil
	}
	err := s.f.Close()
	s.f = nil
	if s.broken == nil {
		s.broken = fmt.Errorf("%w: the server is closed", ErrStopped)
	}
	return err
}

// repairTail terminates a partial last line with a newline (fsynced) and
// returns its length.
func repairTail(f *os.File) (int64, error) {
	fi, err := f.Stat()
	if err != nil {
		return 0, fmt.Errorf("stat the reports file: %w", err)
	}
	size := fi.Size()
	if size == 0 {
		return 0, nil
	}
	var last [1]byte
	if _, err := f.ReadAt(last[:], size-1); err != nil {
		return 0, fmt.Errorf("read the end of the reports file: %w", err)
	}
	if last[0] == '\n' {
		return 0, nil
	}
	// Measure the partial line: scan back to the previous newline.
	partial := int64(0)
	buf := make([]byte, 32<<10)
	for off := size; off > 0; {
		n := int64(len(buf))
		if n > off {
			n = off
		}
		off -= n
		if _, err := f.ReadAt(buf[:n], off); err != nil {
			return 0, fmt.Errorf("read the end of the reports file: %w", err)
		}
		if i := bytes.LastIndexByte(buf[:n], '\n'); i >= 0 {
			partial = size - (off + int64(i) + 1)
			break
		}
		partial = size - off
	}
	if _, err := f.Write([]byte{'\n'}); err != nil {
		return 0, fmt.Errorf("terminate the partial last line of the reports file: %w", err)
	}
	if err := f.Sync(); err != nil {
		return 0, fmt.Errorf("sync the reports file: %w", err)
	}
	return partial, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open the reports directory: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync the reports directory %s: %w", dir, err)
	}
	return nil
}

// ServeHTTP implements http.Handler: POST /v1/reports stores one report;
// GET /healthz tells whether the server can write.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case HealthPath:
		s.health(w, r)
		return
	case Path:
	default:
		writeError(w, http.StatusNotFound, "no such endpoint: POST reports to "+Path)
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeError(w, http.StatusMethodNotAllowed, "use POST to send a report")
		return
	}
	if msg := s.checkToken(r.Header.Get("Authorization")); msg != "" {
		w.Header().Set("WWW-Authenticate", `Bearer realm="fwagent reports"`)
		s.log.WithField("status", http.StatusUnauthorized).Warn("report refused: " + msg)
		writeError(w, http.StatusUnauthorized, msg)
		return
	}
	if ct := r.Header.Get("Content-Type"); ct != "" {
		if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/json" {
			writeError(w, http.StatusUnsupportedMediaType, fmt.Sprintf("content type %q: send application/json", ct))
			return
		}
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.maxBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			s.log.WithField("status", http.StatusRequestEntityTooLarge).Warn("report refused: too large")
			writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("the report is larger than %d bytes", s.maxBody))
			return
		}
		writeError(w, http.StatusBadRequest, "read the request body: "+err.Error())
		return
	}
	rep, compact, err := ParseReport(body)
	if err != nil {
		s.log.WithFields(logrus.Fields{"status": http.StatusBadRequest, "serial": rep.DeviceSerial}).Warn("report refused: " + err.Error())
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if err := s.append(encodeLine(s.Now(), compact)); err != nil {
		s.log.WithError(err).Error("report not stored")
		writeError(w, http.StatusServiceUnavailable, "the report was not stored, send it again later")
		return
	}
	s.log.WithFields(logrus.Fields{"id": rep.ID, "serial": rep.DeviceSerial, "release": rep.ReleaseID, "step": rep.Step, "result": rep.Result}).Info("report stored")
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_ = json.NewEncoder(w).Encode(map[string]string{"stored": rep.ID})
}

// checkToken returns why the Authorization header is refused, or "".
// The token is compared in constant time (over SHA-256 digests, so its
// length does not leak either).
func (s *Server) checkToken(header string) string {
	scheme, token, ok := strings.Cut(header, " ")
	if header == "" {
		return "missing bearer token: set report.token in the agent config"
	}
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "the Authorization header is not a bearer token"
	}
	sum := sha256.Sum256([]byte(strings.TrimSpace(token)))
	if subtle.ConstantTimeCompare(sum[:], s.tokenSum[:]) != 1 {
		return "wrong bearer token: check report.token in the agent config"
	}
	return ""
}

func (s *Server) health(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		writeError(w, http.StatusMethodNotAllowed, "use GET")
		return
	}
	s.mu.Lock()
	broken := s.broken
	s.mu.Unlock()
	if broken != nil {
		writeError(w, http.StatusServiceUnavailable, broken.Error())
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = io.WriteString(w, "ok\n")
}

// append writes line with one write and fsyncs it. A short or failed write
// is cut off again so the file keeps whole lines; when that or the fsync
// fails the server stops accepting (503) until restarted, because the file
// can no longer be trusted.
func (s *Server) append(line []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.broken != nil {
		return s.broken
	}
	n, err := s.f.Write(line)
	if err != nil || n != len(line) {
		if err == nil {
			err = io.ErrShortWrite
		}
		if n > 0 {
			if terr := s.undo(int64(n)); terr != nil {
				s.broken = fmt.Errorf("%w: a write failed (%v) and could not be undone (%v): restart the server, it repairs the file", ErrStopped, err, terr)
				return s.broken
			}
		}
		return fmt.Errorf("append to %s: %w", s.path, err)
	}
	if err := s.f.Sync(); err != nil {
		s.broken = fmt.Errorf("%w: fsync of %s failed (%v): restart the server once the disk is healthy", ErrStopped, s.path, err)
		return s.broken
	}
	return nil
}

// undo cuts the last n bytes (a partial write) off the file.
func (s *Server) undo(n int64) error {
	fi, err := s.f.Stat()
	if err != nil {
		return err
	}
	if err := s.f.Truncate(fi.Size() - n); err != nil {
		return err
	}
	return s.f.Sync()
}

func writeError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": msg})
}
