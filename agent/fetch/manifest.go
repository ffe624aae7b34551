package fetch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"

	"github.com/hashicorp/go-retryablehttp"
	"github.com/sirupsen/logrus"

	"github.com/fwagent/fwagent/internal/redact"
)

// DefaultMaxManifestSize caps a manifest body when Fetcher.MaxSize is 0.
const DefaultMaxManifestSize = 1 << 20

// Conditional carries the validators of the manifest the agent already has,
// so an unchanged manifest costs one request answered 304 and no parsing.
type Conditional struct {
	ETag         string // sent as If-None-Match
	LastModified string // sent as If-Modified-Since
}

// Result is what Fetch brings back.
type Result struct {
	Body         []byte // nil when NotModified
	NotModified  bool   // the server (or the file's mtime and size) says nothing changed
	ETag         string // validators to keep for the next Conditional
	LastModified string
	URL          string // the URL that answered
}

// Fetcher fetches small documents (signed manifests) from http(s):// or
// file:// URLs, trying them in order.
type Fetcher struct {
	HTTP    *retryablehttp.Client // nil: NewHTTPClient with DefaultTimeout
	MaxSize int64                 // body cap in bytes (default DefaultMaxManifestSize)
	Logger  logrus.FieldLogger    // nil logs nothing
}

// Fetch tries urls in order and returns the first answer: a body, or
// NotModified when cond still matches. It fails only when every URL failed;
// the error is then an *Error whose Transient flag says whether any URL
// failed in a way that may heal.
func (f *Fetcher) Fetch(ctx context.Context, urls []string, cond Conditional) (Result, error) {
	if len(urls) == 0 {
		return Result{}, &Error{Op: "fetch manifest", Code: CodeBadRequest,
			Err: errors.New("no manifest url configured: set manifest.urls")}
	}
	var errs []error
	transient := false
	var last *Error
	for _, u := range urls {
		res, err := f.fetchOne(ctx, u, cond)
		if err == nil {
			return res, nil
		}
		e := classify("fetch manifest", u, err)
		if e.Code == CodeCanceled {
			return Result{}, e
		}
		f.log().WithFields(logrus.Fields{"url": redact.URL(u), "code": e.Code}).WithError(err).Warn("manifest fetch failed; trying the next url")
		errs = append(errs, e)
		transient = transient || e.Transient
		last = e
	}
	if len(errs) == 1 {
		return Result{}, last
	}
	return Result{}, &Error{Op: "fetch manifest", Code: last.Code, Status: last.Status, Transient: transient,
		Err: fmt.Errorf("all %d urls failed: %w", len(urls), errors.Join(errs...))}
}

func (f *Fetcher) log() logrus.FieldLogger {
	if f.Logger == nil {
		return discard
	}
	return f.Logger
}

func (f *Fetcher) maxSize() int64 {
	if f.MaxSize <= 0 {
		return DefaultMaxManifestSize
	}
	return f.MaxSize
}

func (f *Fetcher) fetchOne(ctx context.Context, raw string, cond Conditional) (Result, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return Result{}, &Error{Op: "fetch manifest", URL: raw, Code: CodeBadRequest, Err: fmt.Errorf("bad url: %w", err)}
	}
	switch u.Scheme {
	case "file":
		return f.fetchFile(u, raw, cond)
	case "http", "https":
		return f.fetchHTTP(ctx, raw, cond)
	default:
		return Result{}, &Error{Op: "fetch manifest", URL: raw, Code: CodeBadRequest,
			Err: fmt.Errorf("unsupported url scheme %q: use https://, http:// or file://", u.Scheme)}
	}
}

func (f *Fetcher) fetchHTTP(ctx context.Context, raw string, cond Conditional) (Result, error) {
	client := f.HTTP
	if client == nil {
		client = NewHTTPClient(ClientOptions{Logger: f.Logger, Timeout: DefaultTimeout})
	}
	req, err := retryablehttp.NewRequestWithContext(ctx, http.MethodGet, raw, nil)
	if err != nil {
		return Result{}, &Error{Op: "fetch manifest", URL: raw, Code: CodeBadRequest, Err: err}
	}
	if cond.ETag != "" {
		req.Header.Set("If-None-Match", cond.ETag)
	}
	if cond.LastModified != "" {
		req.Header.Set("If-Modified-Since", cond.LastModified)
	}
	req.Header.Set("Accept", "application/json, application/vnd.fwagent.manifest+json")
	resp, err := client.Do(req)
	if err != nil {
		return Result{}, err
	}
	defer resp.Body.Close()
	res := Result{URL: raw, ETag: resp.Header.Get("ETag"), LastModified: resp.Header.Get("Last-Modified")}
	switch {
	case resp.StatusCode == http.StatusNotModified:
		// No body to read; keep the validators we sent if the server
		// omitted them on the 304.
		res.NotModified = true
		if res.ETag == "" {
			res.ETag = cond.ETag
		}
		if res.LastModified == "" {
			res.LastModified = cond.LastModified
		}
		return res, nil
	case resp.StatusCode != http.StatusOK:
		return Result{}, &Error{Op: "fetch manifest", URL: raw, Code: CodeStatus, Status: resp.StatusCode,
			Transient: statusTransient(resp.StatusCode),
			Err:       fmt.Errorf("server answered %s", resp.Status)}
	}
	max := f.maxSize()
	if resp.ContentLength > max {
		return Result{}, tooLarge(raw, resp.ContentLength, max)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, max+1))
	if err != nil {
		return Result{}, err
	}
	if int64(len(body)) > max {
		return Result{}, tooLarge(raw, -1, max)
	}
	res.Body = body
	return res, nil
}

func tooLarge(raw string, got, max int64) *Error {
	what := "more than"
	if got >= 0 {
		what = fmt.Sprintf("%d bytes, more than", got)
	}
	return &Error{Op: "fetch manifest", URL: raw, Code: CodeTooLarge,
		Err: fmt.Errorf("%w: %s the cap of %d bytes; check the url or raise the cap", ErrTooLarge, what, max)}
}

// fetchFile reads a file:// manifest. Its validator is an ETag made of the
// file's mtime and size, so an unchanged file on a USB stick or local mirror
// is skipped like a 304.
func (f *Fetcher) fetchFile(u *url.URL, raw string, cond Conditional) (Result, error) {
	path, err := filePath(u)
	if err != nil {
		return Result{}, &Error{Op: "fetch manifest", URL: raw, Code: CodeBadRequest, Err: err}
	}
	fh, err := os.Open(path)
	if err != nil {
		return Result{}, &Error{Op: "fetch manifest", URL: raw, Code: CodeLocalFile, Err: err}
	}
	defer fh.Close()
	fi, err := fh.Stat()
	if err != nil {
		return Result{}, &Error{Op: "fetch manifest", URL: raw, Code: CodeLocalFile, Err: err}
	}
	if fi.IsDir() {
		return Result{}, &Error{Op: "fetch manifest", URL: raw, Code: CodeLocalFile,
			Err: fmt.Errorf("%s is a directory: point the url at the manifest file", path)}
	}
	etag := fileETag(fi)
	res := Result{URL: raw, ETag: etag, LastModified: fi.ModTime().UTC().Format(http.TimeFormat)}
	if cond.ETag != "" && cond.ETag == etag {
		res.NotModified = true
		return res, nil
	}
	max := f.maxSize()
	if fi.Size() > max {
		return Result{}, tooLarge(raw, fi.Size(), max)
	}
	body, err := io.ReadAll(io.LimitReader(fh, max+1))
	if err != nil {
		return Result{}, &Error{Op: "fetch manifest", URL: raw, Code: CodeLocalFile, Err: err}
	}
	if int64(len(body)) > max {
		return Result{}, tooLarge(raw, -1, max)
	}
	res.Body = body
	return res, nil
}

func fileETag(fi os.FileInfo) string {
	return fmt.Sprintf(`"file-%x-%x"`, fi.ModTime().UnixNano(), fi.Size())
}

// filePath turns file:///abs/path (or file:/abs/path) into a local path.
func filePath(u *url.URL) (string, error) {
	if u.Host != "" && u.Host != "localhost" {
		return "", fmt.Errorf("file url with host %q: use file:///absolute/path", u.Host)
	}
	p := u.Path
	if p == "" {
		p = u.Opaque
	}
	if p == "" || !strings.HasPrefix(p, "/") {
		return "", fmt.Errorf("file url %q has no absolute path: use file:///absolute/path", u.String())
	}
	return p, nil
}

var discard = func() logrus.FieldLogger {
	l := logrus.New()
	l.SetOutput(io.Discard)
	l.SetLevel(logrus.PanicLevel)
	return l
}()
