package isapi

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"

	"github.com/hashicorp/go-retryablehttp"

	"github.com/fwagent/fwagent/device"
)

// PathConfigurationData exports (GET) and restores (PUT) the recorder's
// configuration file. fwagent only exports it.
const PathConfigurationData = "/ISAPI/System/configurationData"

// MaxConfigExport caps a configuration export: recorders' files are
// hundreds of KB to a few MB; anything far larger is not one.
const MaxConfigExport = 64 << 20

var _ device.ConfigExporter = (*Client)(nil)

// ExportConfig streams the recorder's configuration file (GET
// System/configurationData) to w, never holding it whole in memory, and
// returns the bytes written. The file holds credentials: it is never logged.
// A recorder without the export (404, ResponseStatus notSupport) gives an
// error wrapping device.ErrNotSupported. The request goes through the
// client's retrying API client (only the reply's headers are retried: once
// the file starts arriving, a broken transfer is an error, and w may hold a
// partial file the caller must discard).
func (c *Client) ExportConfig(ctx context.Context, w io.Writer) (int64, error) {
	n, err := c.exportConfig(ctx, w)
	return n, wrap("backup", err)
}

func (c *Client) exportConfig(ctx context.Context, w io.Writer) (int64, error) {
	req, err := retryablehttp.NewRequestWithContext(ctx, http.MethodGet, c.base.String()+PathConfigurationData, nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Accept", "application/octet-stream, application/xml")
	resp, err := c.api.Do(req)
	if err != nil {
		if resp != nil {
			drain(resp)
		}
		return 0, transportError(ctx, PathConfigurationData, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		body, err := readCapped(resp.Body)
		if err != nil && !errors.Is(err, ErrTooLarge) {
			return 0, transportError(ctx, PathConfigurationData, err)
		}
		return 0, notSupported(PathConfigurationData, resp.StatusCode, replyError(PathConfigurationData, resp.StatusCode, body))
	}
	br := bufio.NewReader(resp.Body)
	if isXML(resp.Header.Get("Content-Type"), br) {
		// A configuration file is binary: an XML reply is the recorder
		// refusing (some answer 200 with a ResponseStatus).
		body, err := readCapped(br)
		if err != nil {
			return 0, fmt.Errorf("%s: %w", PathConfigurationData, err)
		}
		if doc, err := parseDocument(body); err == nil {
			if se := doc.statusError(resp.StatusCode); se != nil {
				return 0, notSupported(PathConfigurationData, resp.StatusCode, se)
			}
			return 0, fmt.Errorf("%w: %s answered <%s>, not a configuration file", ErrBadReply, PathConfigurationData, truncate(doc.Root))
		}
		return 0, fmt.Errorf("%w: %s answered an XML document, not a configuration file", ErrBadReply, PathConfigurationData)
	}
	if resp.ContentLength > MaxConfigExport {
		return 0, fmt.Errorf("%w: %s announces %d bytes, more than the %d a configuration file can be", ErrTooLarge, PathConfigurationData, resp.ContentLength, MaxConfigExport)
	}
	n, err := io.Copy(markedWriter{w}, io.LimitReader(br, MaxConfigExport+1))
	switch {
	case err != nil && ctx.Err() != nil:
		return n, ctx.Err()
	case err != nil:
		var we *writeError
		if errors.As(err, &we) {
			return n, fmt.Errorf("storing the configuration export: %w", we.err)
		}
		return n, transportError(ctx, PathConfigurationData, fmt.Errorf("the export broke after %d bytes: %w", n, err))
	case n > MaxConfigExport:
		return n, fmt.Errorf("%w: %s sent more than %d bytes", ErrTooLarge, PathConfigurationData, MaxConfigExport)
	case n == 0:
		return 0, fmt.Errorf("%w: %s sent an empty file", ErrBadReply, PathConfigurationData)
	case resp.ContentLength > 0 && n != resp.ContentLength:
		return n, fmt.Errorf("%w: %s: the export ended after %d of %d bytes", device.ErrUnreachable, PathConfigurationData, n, resp.ContentLength)
	}
	return n, nil
}

// writeError marks a failure to write the export (a full disk), as opposed
// to a failure to read it from the recorder.
type writeError struct{ err error }

func (e *writeError) Error() string { return e.err.Error() }
func (e *writeError) Unwrap() error { return e.err }

// markedWriter marks its errors as writeErrors.
type markedWriter struct{ w io.Writer }

func (m markedWriter) Write(p []byte) (int, error) {
	n, err := m.w.Write(p)
	if err != nil {
		err = &writeError{err}
	}
	return n, err
}

// isXML reports whether the reply is an XML document: by its Content-Type,
// or, when that says nothing useful, by its first bytes.
func isXML(ctype string, br *bufio.Reader) bool {
	if mt, _, err := mime.ParseMediaType(ctype); err == nil {
		switch {
		case strings.HasSuffix(mt, "/xml"), strings.HasSuffix(mt, "+xml"):
			return true
		case mt == "application/octet-stream":
			return false
		}
	}
	head, _ := br.Peek(64)
	s := strings.TrimLeft(string(head), " \t\r\n\ufeff")
	return strings.HasPrefix(s, "<?xml") || strings.HasPrefix(s, "<ResponseStatus")
}
