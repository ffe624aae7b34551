package fetch

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/cavaliergopher/grab/v3"
	"github.com/sirupsen/logrus"

	"github.com/fwagent/fwagent/internal/redact"
	"github.com/fwagent/fwagent/verify"
)

// Download defaults, used when the Downloader's fields are zero.
const (
	DefaultStallTimeout = 60 * time.Second
	// DefaultBufferSize is the copy buffer when no bandwidth limit is set,
	// and so the size of each read from the network and each write to the
	// file. Each write gets page-cache folios up to its own size; on the
	// 2-core VM of docs/benchmarks.md, filling fresh large folios (256 KiB
	// writes) cost up to 2.5x curl's system CPU per GiB, while small
	// writes (32 KiB) cost more socket reads, ACKs and wake-ups. 64 KiB
	// had the lowest worst case of both; docs/benchmarks.md has the figures.
	DefaultBufferSize = 64 << 10
)

// Request describes one image to download.
type Request struct {
	URLs   []string // mirrors, tried in order: http(s):// or file://
	Path   string   // destination file; a partial file there is resumed
	Size   int64    // declared size in bytes (from the signed release)
	SHA256 string   // declared digest, hex
}

// DownloadResult is what Download proves about the file at Request.Path.
type DownloadResult struct {
	Facts        verify.ImageFacts // what the sink saw: every byte of the file, in order
	Resumed      bool              // bytes from an earlier partial file were kept
	BytesFetched int64             // body bytes received over the network in this call
	URL          string            // the URL that completed the file
}

// Downloader downloads firmware images with grab: resumable, mirror-aware,
// rate-limited, with stall detection, and hashing every byte as it arrives so
// the final proof needs no second read of the file.
type Downloader struct {
	// Client sends the requests (e.g. NewHTTPClient(...).StandardClient()
	// with Timeout 0 and RetryMax 0: the Downloader is the one layer that
	// retries image GETs, since a body cut mid-copy needs a new request
	// that resumes). Nil builds one that never retries.
	Client grab.HTTPClient
	// BandwidthLimit caps the average rate in bytes/s; 0 means no limit.
	BandwidthLimit int64
	// StallTimeout is how long a request may go without receiving a byte
	// (headers included) before it is abandoned (default 60s).
	StallTimeout time.Duration
	// RetryMax is how often one URL is tried again after a transient
	// failure before the next URL: 0 means one GET per URL (plus a HEAD
	// when a partial file is resumed), N at most N+1.
	RetryMax int
	// Backoff is the pause before retry n (n >= 1) of the same URL
	// (retry.Policy.Wait); nil means no pause.
	Backoff func(n int) time.Duration
	// Progress, if set, is called as bytes arrive (throttled to about every
	// half percent) for a progress bar.
	Progress func(done, total int64)
	// NewSink makes the one-pass inspector fed every byte (default NewImageSink).
	NewSink func() Sink
	// Logger receives progress every 10% and failures; nil logs nothing.
	Logger logrus.FieldLogger

	limiter *RateLimiter
	// syncFile flushes an open file or directory to disk (default
	// (*os.File).Sync). A test seam only.
	syncFile func(*os.File) error
}

func (d *Downloader) log() logrus.FieldLogger {
	if d.Logger == nil {
		return discard
	}
	return d.Logger
}

func (d *Downloader) backoff(n int) time.Duration {
	if d.Backoff != nil {
		return d.Backoff(n)
	}
	return 0
}

// Download brings req.Path to exactly req.Size bytes whose SHA-256 is
// req.SHA256, trying req.URLs in order and resuming what is already on disk.
// On success the returned Facts describe the whole file, and the file and
// its directory entry have been synced to disk, so that a power cut after
// the caller recorded the image as verified cannot leave it damaged. A
// digest or size mismatch removes the file (the bytes are wrong; the next
// try starts over).
// Errors are *Error; IsTransient says whether trying again later may help.
func (d *Downloader) Download(ctx context.Context, req Request) (DownloadResult, error) {
	if err := validateRequest(req); err != nil {
		return DownloadResult{}, err
	}
	want := strings.ToLower(req.SHA256)
	if err := os.MkdirAll(filepath.Dir(req.Path), 0o755); err != nil {
		return DownloadResult{}, &Error{Op: "download image", Code: CodeLocalFile, Err: err}
	}
	if d.BandwidthLimit > 0 && d.limiter == nil {
		d.limiter = NewRateLimiter(d.BandwidthLimit)
	}
	st := &state{d: d, path: req.Path, size: req.Size}
	defer st.close()
	if err := st.sync(); err != nil {
		return DownloadResult{}, err
	}
	if d.Client == nil {
		stall := d.StallTimeout
		if stall <= 0 {
			stall = DefaultStallTimeout
		}
		st.client = NewHTTPClient(ClientOptions{RetryMax: 0, Logger: d.Logger, HeaderTimeout: stall}).StandardClient()
	} else {
		st.client = d.Client
	}
	var res DownloadResult
	if st.hashed > 0 {
		d.log().WithFields(logrus.Fields{"path": req.Path, "bytes": st.hashed, "total": req.Size}).Info("resuming partial image")
	}
	if st.hashed == req.Size {
		// A complete file from an earlier run: prove it, or start over.
		if err := st.final(want); err == nil {
			if err := d.persist(req.Path); err != nil {
				return res, err
			}
			res.Facts = st.sink.Facts()
			res.Resumed = true
			return res, nil
		} else {
			d.log().WithError(err).Warn("existing image is wrong; downloading it again")
			if err := st.discard(); err != nil {
				return res, err
			}
		}
	}
	if err := CheckFreeSpace(filepath.Dir(req.Path), req.Size-st.hashed); err != nil {
		return res, err
	}

	var errs []error
	transient := false
	evidence := true // every URL served a body contradicting the declared size or digest
	var last *Error
	for _, u := range req.URLs {
		err := d.fromURL(ctx, u, st, &res)
		if err == nil {
			if err = st.final(want); err == nil {
				if err := d.persist(req.Path); err != nil {
					return res, err
				}
				res.Facts = st.sink.Facts()
				res.URL = u
				res.Resumed = st.resumed
				d.log().WithFields(logrus.Fields{"url": redact.URL(u), "bytes": req.Size, "sha256": want, "resumed": res.Resumed}).Info("image downloaded and verified")
				return res, nil
			}
			// The bytes are wrong: forget them all.
			if derr := st.discard(); derr != nil {
				return res, derr
			}
		}
		e := classify("download image", u, err)
		if e.Code == CodeCanceled || e.Code == CodeNoSpace {
			return res, e
		}
		d.log().WithFields(logrus.Fields{"url": redact.URL(u), "code": e.Code}).WithError(err).Warn("download from this url failed; trying the next one")
		errs = append(errs, e)
		transient = transient || e.Transient
		evidence = evidence && contradictsImage(e)
		last = e
	}
	if len(errs) == 1 {
		last.ImageEvidence = evidence
		return res, last
	}
	return res, &Error{Op: "download image", Code: last.Code, Status: last.Status, Transient: transient, ImageEvidence: evidence,
		Err: fmt.Errorf("all %d urls failed: %w", len(errs), errors.Join(errs...))}
}

// persist syncs the proven image at path, then its directory, to disk.
// grab writes through its own file and does not report the error of its
// Close; a sync through a new descriptor reports a failed write-back too.
func (d *Downloader) persist(path string) error {
	syncFile := d.syncFile
	if syncFile == nil {
		syncFile = (*os.File).Sync
	}
	for i, p := range []string{path, filepath.Dir(path)} {
		f, err := os.Open(p)
		if err == nil {
			err = syncFile(f)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
		}
		if i == 1 && errors.Is(err, syscall.EINVAL) {
			// Some file systems cannot sync a directory; the file is synced.
			d.log().WithField("dir", p).WithError(err).Debug("the file system cannot sync a directory")
			err = nil
		}
		if err != nil {
			code := CodeLocalFile
			if isNoSpace(err) {
				code = CodeNoSpace
			}
			return &Error{Op: "download image", Code: code, Transient: code == CodeNoSpace,
				Err: fmt.Errorf("sync %s to disk: %w: check the disk; the image is kept but not used until it is proven again", p, err)}
		}
	}
	return nil
}

func validateRequest(req Request) error {
	bad := func(format string, a ...any) error {
		return &Error{Op: "download image", Code: CodeBadRequest, Err: fmt.Errorf(format, a...)}
	}
	switch {
	case len(req.URLs) == 0:
		return bad("the release lists no image url")
	case req.Path == "":
		return bad("no destination path")
	case req.Size <= 0:
		return bad("declared size %d is not positive: the release must declare the image size", req.Size)
	}
	if b, err := hex.DecodeString(req.SHA256); err != nil || len(b) != 32 {
		return bad("declared sha256 %q is not 64 hex digits", req.SHA256)
	}
	return nil
}

// fromURL runs bounded attempts against one URL until the file is complete
// (nil) or the URL is given up (the last error).
func (d *Downloader) fromURL(ctx context.Context, raw string, st *state, res *DownloadResult) error {
	u, err := url.Parse(raw)
	if err != nil {
		return &Error{Op: "download image", URL: raw, Code: CodeBadRequest, Err: fmt.Errorf("bad url: %w", err)}
	}
	switch u.Scheme {
	case "file":
		return d.fromFile(ctx, u, raw, st, res)
	case "http", "https":
	default:
		return &Error{Op: "download image", URL: raw, Code: CodeBadRequest,
			Err: fmt.Errorf("unsupported url scheme %q: use https://, http:// or file://", u.Scheme)}
	}
	attempts := max(d.RetryMax, 0) + 1
	var lastErr error
	for n := 1; n <= attempts; n++ {
		if n > 1 {
			if err := sleepCtx(ctx, d.backoff(n-1)); err != nil {
				return err
			}
		}
		err := d.attempt(ctx, raw, st, res)
		if err == nil {
			return nil
		}
		lastErr = err
		if ctx.Err() != nil {
			return ctx.Err()
		}
		// Whatever happened, make the sink agree with the file on disk
		// again before the next request resumes from it.
		if serr := st.sync(); serr != nil {
			return serr
		}
		e := classify("download image", raw, err)
		fields := logrus.Fields{"url": redact.URL(raw), "attempt": n, "of": attempts, "code": e.Code, "have": st.hashed, "total": st.size}
		switch {
		case e.Code == CodeNoSpace:
			return e
		case !e.Transient:
			return e
		default:
			d.log().WithFields(fields).WithError(err).Warn("download attempt failed; will resume")
		}
	}
	return lastErr
}

// attempt is one grab request: a HEAD (when resuming) and a GET.
func (d *Downloader) attempt(ctx context.Context, raw string, st *state, res *DownloadResult) error {
	if st.hashed == st.size {
		return nil
	}
	actx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stall := d.StallTimeout
	if stall <= 0 {
		stall = DefaultStallTimeout
	}
	watch := time.AfterFunc(stall, func() { cancel(ErrStalled) })
	defer watch.Stop()

	ac := &attemptClient{base: st.client, st: st, kick: func() { watch.Reset(stall) }, url: raw}
	greq, err := grab.NewRequest(st.path, raw)
	if err != nil {
		return &Error{Op: "download image", URL: raw, Code: CodeBadRequest, Err: err}
	}
	greq = greq.WithContext(actx)
	greq.Size = st.size
	greq.IgnoreRemoteTime = true
	greq.NoCreateDirectories = true
	greq.BufferSize = DefaultBufferSize
	if d.limiter != nil {
		greq.RateLimiter = d.limiter
		greq.BufferSize = limitedBuffer(d.BandwidthLimit)
	}
	gc := &grab.Client{HTTPClient: ac, UserAgent: "fwagent"}
	resp := gc.Do(greq)
	err = resp.Err()
	res.BytesFetched += ac.received
	if errors.Is(err, errWholeBodyWritten) {
		err = nil
	}
	if err != nil {
		if errors.Is(context.Cause(actx), ErrStalled) && ctx.Err() == nil {
			return &Error{Op: "download image", URL: raw, Code: CodeStalled, Transient: true,
				Err: fmt.Errorf("%w (%s)", ErrStalled, stall)}
		}
		if isNoSpace(err) {
			return &Error{Op: "download image", URL: raw, Code: CodeNoSpace, Transient: true,
				Err: fmt.Errorf("%w: writing %s: %v: free some space; the partial file is kept and will resume", ErrNoSpace, st.path, err)}
		}
		return err
	}
	if st.hashed != st.size {
		// grab saw a clean end but the bytes do not add up.
		return &Error{Op: "download image", URL: raw, Code: CodeNetwork, Transient: true,
			Err: fmt.Errorf("transfer ended at %d of %d bytes", st.hashed, st.size)}
	}
	return nil
}

// limitedBuffer keeps each read to about a tenth of a second's worth of
// bytes so the limiter's pauses stay short and smooth.
func limitedBuffer(limit int64) int {
	b := limit / 10
	if b < 1024 {
		b = 1024
	}
	if b > 32<<10 {
		b = 32 << 10
	}
	return int(b)
}

// fromFile copies a file:// image through the sink: no resume (local copies
// are fast), same size and digest checks, same bandwidth limit (a USB stick
// or a network mount shares the recorder's I/O and links too).
func (d *Downloader) fromFile(ctx context.Context, u *url.URL, raw string, st *state, res *DownloadResult) error {
	src, err := filePath(u)
	if err != nil {
		return &Error{Op: "download image", URL: raw, Code: CodeBadRequest, Err: err}
	}
	in, err := os.Open(src)
	if err != nil {
		return &Error{Op: "download image", URL: raw, Code: CodeLocalFile, Err: err}
	}
	defer in.Close()
	fi, err := in.Stat()
	if err != nil {
		return &Error{Op: "download image", URL: raw, Code: CodeLocalFile, Err: err}
	}
	if fi.Size() != st.size {
		return &Error{Op: "download image", URL: raw, Code: CodeSizeMismatch,
			Err: fmt.Errorf("%w: %s has %d bytes, the release declares %d", ErrSizeMismatch, src, fi.Size(), st.size)}
	}
	var n int64
	err = st.writeWhole(ctx, raw, in, func() {}, &n)
	res.BytesFetched += n
	var fe *Error
	if err != nil && !errors.As(err, &fe) && ctx.Err() == nil {
		return classifyLocal(raw, err)
	}
	return err
}

// errWholeBodyWritten tells attempt that attemptClient wrote a whole-file
// answer itself (a 200 to a Range request); grab did nothing.
var errWholeBodyWritten = errors.New("the whole body was written from offset 0")

// writeWhole replaces the partial file with body, read from offset 0
// through the sink, at most the declared size plus one byte, paced by the
// bandwidth limit. It serves file:// urls and servers that answer a Range
// request with the whole file. n counts the bytes read. Errors other than
// *Error are the reader's or the context's, for the caller to classify.
func (st *state) writeWhole(ctx context.Context, raw string, body io.Reader, kick func(), n *int64) error {
	if err := st.discard(); err != nil {
		return err
	}
	out, err := os.OpenFile(st.path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return &Error{Op: "download image", URL: raw, Code: CodeLocalFile, Err: err}
	}
	var r io.Reader = &teeBody{r: io.LimitReader(body, st.size+1), st: st, kick: kick, count: n}
	bufSize := DefaultBufferSize
	if l := st.d.limiter; l != nil {
		r = &limitedReader{ctx: ctx, r: r, l: l}
		bufSize = limitedBuffer(st.d.BandwidthLimit)
	}
	_, err = io.CopyBuffer(onlyWriter{out}, r, make([]byte, bufSize))
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		if isNoSpace(err) {
			return &Error{Op: "download image", URL: raw, Code: CodeNoSpace, Transient: true,
				Err: fmt.Errorf("%w: writing %s: %v: free some space", ErrNoSpace, st.path, err)}
		}
		return err
	}
	return nil
}

// onlyWriter hides the file's ReadFrom so io.CopyBuffer uses the buffer
// (whose size paces the bandwidth limit).
type onlyWriter struct{ w io.Writer }

func (o onlyWriter) Write(p []byte) (int, error) { return o.w.Write(p) }

// limitedReader waits on the limiter for every read, as grab does for
// http(s) bodies.
type limitedReader struct {
	ctx context.Context
	r   io.Reader
	l   *RateLimiter
}

func (lr *limitedReader) Read(p []byte) (int, error) {
	n, err := lr.r.Read(p)
	if n > 0 {
		if werr := lr.l.WaitN(lr.ctx, n); werr != nil && err == nil {
			err = werr
		}
	}
	return n, err
}

func classifyLocal(raw string, err error) error {
	var fe *Error
	if errors.As(err, &fe) {
		return err
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return &Error{Op: "download image", URL: raw, Code: CodeSizeMismatch,
			Err: fmt.Errorf("%w: the file shrank while it was copied", ErrSizeMismatch)}
	}
	return &Error{Op: "download image", URL: raw, Code: CodeLocalFile, Err: err}
}

// state ties the sink to the partial file: the invariant between requests is
// that the sink has been fed exactly the file's bytes (hashed == file size).
type state struct {
	d      *Downloader
	path   string
	size   int64
	sink   *pipeSink
	hashed int64 // bytes fed to sink
	// resumed: the sink's bytes include some that were on disk before the
	// current request (a partial file read back, or a 206 continuation).
	resumed bool
	client  grab.HTTPClient

	lastLogged int // last 10% step logged
	lastCalled int64
	wb         writeback // early writeback of the bytes on disk
}

func (s *state) newSink() {
	s.close()
	inner := NewImageSink()
	if s.d.NewSink != nil {
		inner = s.d.NewSink()
	}
	s.sink = newPipeSink(inner)
	s.wb.reset()
	s.hashed = 0
	s.resumed = false
	s.lastLogged = 0
	s.lastCalled = 0
}

// close stops the current sink's hashing goroutine.
func (s *state) close() {
	if s.sink != nil {
		s.sink.Close()
	}
	s.wb.close()
}

// feed passes bytes that are (or are about to be) in the file to the sink.
func (s *state) feed(p []byte) {
	s.sink.Write(p)
	s.hashed += int64(len(p))
	s.progress()
}

func (s *state) progress() {
	// The bytes just fed may still be on their way to the file: hand the
	// kernel only what lies a buffer behind.
	s.wb.advance(s.path, s.hashed-DefaultBufferSize)
	if s.d.Progress != nil && (s.hashed-s.lastCalled >= s.size/200 || s.hashed == s.size) {
		s.lastCalled = s.hashed
		s.d.Progress(s.hashed, s.size)
	}
	if step := int(s.hashed * 10 / s.size); step > s.lastLogged {
		s.lastLogged = step
		s.d.log().WithFields(logrus.Fields{"done": s.hashed, "total": s.size, "percent": step * 10}).Info("downloading image")
	}
}

// sync makes the sink agree with the file on disk: a file larger than the
// declared size is removed; otherwise, when the sink has not seen exactly
// the file's bytes, the file's prefix is read once into a fresh sink.
func (s *state) sync() error {
	fi, err := os.Stat(s.path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		if s.sink == nil || s.hashed != 0 {
			s.newSink()
		}
		return nil
	case err != nil:
		return &Error{Op: "download image", Code: CodeLocalFile, Err: err}
	case !fi.Mode().IsRegular():
		return &Error{Op: "download image", Code: CodeLocalFile,
			Err: fmt.Errorf("%s is not a regular file: remove it", s.path)}
	case fi.Size() > s.size:
		s.d.log().WithFields(logrus.Fields{"path": s.path, "bytes": fi.Size(), "total": s.size}).Warn("partial image is larger than the release declares; discarding it")
		return s.discard()
	case s.sink != nil && fi.Size() == s.hashed:
		return nil
	}
	s.newSink()
	f, err := os.Open(s.path)
	if err != nil {
		return &Error{Op: "download image", Code: CodeLocalFile, Err: err}
	}
	defer f.Close()
	// The sink is fresh: its goroutine has nothing queued, so the prefix
	// goes straight to the inner Sink from here, in order. A read from
	// disk gains nothing from the pipe, and through it each recorder of a
	// site proving the shared cached image held up to pipeDepth chunks.
	direct := s.sink.inner
	buf := make([]byte, DefaultBufferSize)
	for {
		n, err := f.Read(buf)
		if n > 0 {
			direct.Write(buf[:n])
			s.hashed += int64(n)
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return &Error{Op: "download image", Code: CodeLocalFile, Err: fmt.Errorf("read partial %s: %w", s.path, err)}
		}
	}
	if s.hashed != fi.Size() {
		// The file changed under us; start over rather than guess.
		return s.discard()
	}
	s.resumed = s.hashed > 0
	return nil
}

// discard removes the partial file and resets the sink.
func (s *state) discard() error {
	if err := os.Remove(s.path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return &Error{Op: "download image", Code: CodeLocalFile,
			Err: fmt.Errorf("remove %s: %w: remove it by hand", s.path, err)}
	}
	s.newSink()
	return nil
}

// final proves the file: the sink saw exactly size bytes with the declared
// digest, and the file on disk has that size.
func (s *state) final(want string) error {
	facts := s.sink.Facts()
	fi, err := os.Stat(s.path)
	if err != nil {
		return &Error{Op: "download image", Code: CodeLocalFile, Err: err}
	}
	if facts.Size != s.size || fi.Size() != s.size {
		return &Error{Op: "download image", Code: CodeSizeMismatch,
			Err: fmt.Errorf("%w: got %d bytes (file %d), the release declares %d; the file was removed", ErrSizeMismatch, facts.Size, fi.Size(), s.size)}
	}
	if facts.SHA256 != want {
		return &Error{Op: "download image", Code: CodeDigestMismatch,
			Err: fmt.Errorf("%w: got sha256 %s, the release declares %s; the file was removed", ErrDigestMismatch, facts.SHA256, want)}
	}
	return nil
}

// attemptClient sits between grab and the HTTP client. It checks what grab
// does not: that a 206 starts exactly where the partial file ends and ends at
// the declared size, that a Range request is not answered with the whole file,
// and it tees every body byte into the sink as it arrives.
type attemptClient struct {
	base     grab.HTTPClient
	st       *state
	kick     func()
	url      string
	received int64
}

func (c *attemptClient) Do(req *http.Request) (*http.Response, error) {
	c.kick()
	resp, err := c.base.Do(req)
	if err != nil {
		return nil, err
	}
	c.kick()
	if req.Method != http.MethodGet || resp.StatusCode < 200 || resp.StatusCode > 299 {
		return resp, nil // HEAD, or an error status grab turns into StatusCodeError
	}
	fail := func(code Code, err error) (*http.Response, error) {
		resp.Body.Close()
		return nil, &Error{Op: "download image", URL: c.url, Code: code, Err: err}
	}
	offset, ranged, err := parseRangeRequest(req.Header.Get("Range"))
	if err != nil {
		return fail(CodeBadRequest, err)
	}
	size := c.st.size
	switch {
	case ranged && resp.StatusCode == http.StatusOK:
		// The server ignored the Range and sends the whole file: use it
		// from offset 0 rather than throw it away and ask again. grab
		// would append it to the partial file, so it is written here and
		// grab is told the request is done (errWholeBodyWritten).
		if resp.ContentLength >= 0 && resp.ContentLength != size {
			return fail(CodeSizeMismatch, fmt.Errorf("%w: asked for bytes %d- and got a whole file of %d bytes, the release declares %d", ErrSizeMismatch, offset, resp.ContentLength, size))
		}
		c.st.d.log().WithFields(logrus.Fields{"url": redact.URL(c.url), "have": offset, "total": size}).Warn("server ignored the range request and sends the whole file; using it from the start")
		err := c.st.writeWhole(req.Context(), c.url, resp.Body, c.kick, &c.received)
		resp.Body.Close()
		var fe *Error
		switch {
		case err == nil:
			return nil, errWholeBodyWritten
		case errors.As(err, &fe), req.Context().Err() != nil:
			return nil, err
		}
		return nil, &Error{Op: "download image", URL: c.url, Code: CodeNetwork, Transient: true,
			Err: fmt.Errorf("the whole-file answer broke off at %d of %d bytes: %w", c.st.hashed, size, err)}
	case ranged && resp.StatusCode == http.StatusPartialContent:
		cr := resp.Header.Get("Content-Range")
		start, end, total, err := parseContentRange(cr)
		if err != nil || start != offset || end != size-1 || total != size {
			return fail(CodeBadContentRange, fmt.Errorf("%w: asked for bytes %d-%d/%d, got Content-Range %q", ErrBadContentRange, offset, size-1, size, cr))
		}
		if resp.ContentLength >= 0 && resp.ContentLength != size-offset {
			return fail(CodeBadContentRange, fmt.Errorf("%w: Content-Length %d for a range of %d bytes", ErrBadContentRange, resp.ContentLength, size-offset))
		}
		if c.st.hashed != offset {
			return fail(CodeLocalFile, fmt.Errorf("partial file changed during the download (%d bytes hashed, resuming at %d)", c.st.hashed, offset))
		}
		c.st.resumed = true
	case ranged:
		return fail(CodeStatus, fmt.Errorf("unexpected status %s to a range request", resp.Status))
	case resp.StatusCode != http.StatusOK:
		return fail(CodeBadContentRange, fmt.Errorf("%w: unexpected status %s to a plain request", ErrBadContentRange, resp.Status))
	default:
		// A full download: grab truncates any existing file, so the sink
		// starts over too.
		if c.st.hashed != 0 {
			c.st.newSink()
		}
	}
	resp.Body = &teeBody{r: resp.Body, c: resp.Body, st: c.st, kick: c.kick, count: &c.received}
	return resp, nil
}

// teeBody feeds every byte it returns into the sink, refuses bytes beyond the
// declared size, and turns an early clean EOF into io.ErrUnexpectedEOF.
type teeBody struct {
	r     io.Reader
	c     io.Closer
	st    *state
	kick  func()
	count *int64
}

func (b *teeBody) Read(p []byte) (int, error) {
	remaining := b.st.size - b.st.hashed
	if int64(len(p)) > remaining+1 {
		p = p[:remaining+1] // one extra byte detects a server that sends too much
	}
	n, err := b.r.Read(p)
	if n > 0 {
		b.kick()
		if b.count != nil {
			*b.count += int64(n)
		}
	}
	over := false
	if int64(n) > remaining {
		n, over = int(remaining), true
	}
	if n > 0 {
		b.st.feed(p[:n])
	}
	if over {
		return n, &Error{Op: "download image", Code: CodeTooLong,
			Err: fmt.Errorf("%w: more than %d bytes", ErrTooLong, b.st.size)}
	}
	if err == io.EOF && b.st.hashed < b.st.size {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

func (b *teeBody) Close() error {
	if b.c == nil {
		return nil
	}
	return b.c.Close()
}

// parseRangeRequest reads the "bytes=N-" header grab sends when resuming.
func parseRangeRequest(h string) (offset int64, ranged bool, err error) {
	if h == "" {
		return 0, false, nil
	}
	var n int64
	if _, err := fmt.Sscanf(h, "bytes=%d-", &n); err != nil || n < 0 || h != fmt.Sprintf("bytes=%d-", n) {
		return 0, false, fmt.Errorf("unexpected Range header %q", h)
	}
	return n, true, nil
}

// parseContentRange parses "bytes START-END/TOTAL" strictly.
func parseContentRange(h string) (start, end, total int64, err error) {
	rest, ok := strings.CutPrefix(h, "bytes ")
	if !ok {
		return 0, 0, 0, fmt.Errorf("content-range %q does not start with \"bytes \"", h)
	}
	if _, err := fmt.Sscanf(rest, "%d-%d/%d", &start, &end, &total); err != nil {
		return 0, 0, 0, fmt.Errorf("content-range %q: %w", h, err)
	}
	if fmt.Sprintf("%d-%d/%d", start, end, total) != rest || start < 0 || end < start || total <= end {
		return 0, 0, 0, fmt.Errorf("content-range %q is malformed", h)
	}
	return start, end, total, nil
}
