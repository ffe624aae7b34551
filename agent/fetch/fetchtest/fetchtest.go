// Package fetchtest is a configurable loopback HTTP server for testing
// downloads and manifest fetches under faults: ranges on or off, lying
// Content-Range headers, extra bytes, connections cut at chosen offsets,
// stalls after the headers, forced status codes and conditional requests.
//
// It owns only test scaffolding and must not be imported by production code.
package fetchtest

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// Options shape how the server answers.
type Options struct {
	Body []byte // the file served at every path

	ETag         string // answer If-None-Match with 304 when equal
	LastModified string // answer If-Modified-Since with 304 when equal

	AcceptRanges bool // advertise and honour "Range: bytes=N-"
	IgnoreRange  bool // advertise Accept-Ranges but answer 200 with the whole file

	ContentRangeShift int64 // added to the start reported in Content-Range (a lie)
	ContentRangeTotal int64 // if non-zero, the total reported in Content-Range

	Extra           []byte // bytes sent after Body (and counted in Content-Length unless NoContentLength)
	NoContentLength bool   // send no Content-Length (chunked encoding)

	// CutAt lists file offsets; each one cuts (once) the first GET whose body
	// crosses it, after sending the bytes before it.
	CutAt []int64
	// Stalls is how many GETs, counted from the first, send their headers
	// and then nothing until the client gives up.
	Stalls int
	// Status forces the status of the first len(Status) requests (HEAD and
	// GET alike); 0 entries answer normally.
	Status []int
	// OnGET, if set, runs at the start of every GET (before any byte is sent).
	OnGET func(r *http.Request)
}

// Request is one request the server saw.
type Request struct {
	Method, Range, IfNoneMatch, IfModifiedSince string
	Status                                      int
}

// Server is a running loopback server; Close happens at test cleanup.
type Server struct {
	*httptest.Server
	opts    Options
	closing chan struct{}

	mu       sync.Mutex
	reqs     []Request
	sent     int64
	cutsUsed map[int64]bool
	gets     int
}

// New starts a server with opts and stops it when the test ends.
func New(t testing.TB, opts Options) *Server {
	t.Helper()
	s := &Server{opts: opts, closing: make(chan struct{}), cutsUsed: map[int64]bool{}}
	sort.Slice(s.opts.CutAt, func(i, j int) bool { return s.opts.CutAt[i] < s.opts.CutAt[j] })
	s.Server = httptest.NewServer(s)
	t.Cleanup(s.Server.Close)
	t.Cleanup(func() { close(s.closing) }) // runs first: releases stalled handlers
	return s
}

// Requests returns a copy of every request seen so far.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.reqs...)
}

// BytesSent is the number of body bytes written so far.
func (s *Server) BytesSent() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sent
}

func (s *Server) record(r *http.Request, status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reqs = append(s.reqs, Request{Method: r.Method, Range: r.Header.Get("Range"),
		IfNoneMatch: r.Header.Get("If-None-Match"), IfModifiedSince: r.Header.Get("If-Modified-Since"), Status: status})
}

// ServeHTTP answers one request according to the options.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	o := s.opts
	s.mu.Lock()
	idx := len(s.reqs)
	forced := 0
	if idx < len(o.Status) {
		forced = o.Status[idx]
	}
	stall := false
	if r.Method == http.MethodGet {
		stall = s.gets < o.Stalls
		s.gets++
	}
	s.mu.Unlock()

	if forced != 0 {
		s.record(r, forced)
		http.Error(w, http.StatusText(forced), forced)
		return
	}
	if r.Method == http.MethodGet && o.OnGET != nil {
		o.OnGET(r)
	}
	h := w.Header()
	if o.ETag != "" {
		h.Set("ETag", o.ETag)
	}
	if o.LastModified != "" {
		h.Set("Last-Modified", o.LastModified)
	}
	if (o.ETag != "" && r.Header.Get("If-None-Match") == o.ETag) ||
		(o.LastModified != "" && r.Header.Get("If-Modified-Since") == o.LastModified) {
		s.record(r, http.StatusNotModified)
		w.WriteHeader(http.StatusNotModified)
		return
	}
	if o.AcceptRanges || o.IgnoreRange {
		h.Set("Accept-Ranges", "bytes")
	}
	full := append(append([]byte(nil), o.Body...), o.Extra...)
	status, start := http.StatusOK, int64(0)
	if rng := r.Header.Get("Range"); rng != "" && o.AcceptRanges && !o.IgnoreRange {
		n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimPrefix(rng, "bytes="), "-"), 10, 64)
		if err != nil || n < 0 || n >= int64(len(o.Body)) {
			h.Set("Content-Range", fmt.Sprintf("bytes */%d", len(o.Body)))
			s.record(r, http.StatusRequestedRangeNotSatisfiable)
			w.WriteHeader(http.StatusRequestedRangeNotSatisfiable)
			return
		}
		total := int64(len(o.Body))
		if o.ContentRangeTotal != 0 {
			total = o.ContentRangeTotal
		}
		status, start = http.StatusPartialContent, n
		h.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", n+o.ContentRangeShift, len(o.Body)-1, total))
	}
	payload := full[start:]
	if !o.NoContentLength {
		h.Set("Content-Length", strconv.Itoa(len(payload)))
	}
	s.record(r, status)
	w.WriteHeader(status)
	if r.Method == http.MethodHead {
		return
	}
	flush := func() {
		if f, ok := w.(http.Flusher); ok {
			f.Flush()
		}
	}
	if stall {
		flush()
		select {
		case <-r.Context().Done():
		case <-s.closing:
		}
		return
	}
	cut := int64(-1)
	s.mu.Lock()
	for _, c := range o.CutAt {
		if !s.cutsUsed[c] && c > start && c < start+int64(len(payload)) {
			s.cutsUsed[c] = true
			cut = c
			break
		}
	}
	s.mu.Unlock()
	if cut >= 0 {
		n, _ := w.Write(payload[:cut-start])
		s.addSent(n)
		flush()
		panic(http.ErrAbortHandler) // closes the connection mid-body
	}
	n, _ := w.Write(payload)
	s.addSent(n)
}

func (s *Server) addSent(n int) {
	s.mu.Lock()
	s.sent += int64(n)
	s.mu.Unlock()
}
