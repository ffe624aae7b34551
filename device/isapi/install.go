package isapi

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"os"
	"sync"
	"time"

	"github.com/fwagent/fwagent/device"
)

// Install uploads the image at imagePath and follows the device's flashing
// until it ends. It reports "upload" progress in bytes, then "flash"
// progress in percent. The image is streamed from disk, never held in
// memory, and sent once per attempt: first as PUT application/octet-stream,
// then, if the device says PUT is not supported, as POST multipart/form-data
// in the field updateFile. Install never reboots the device: if the device
// answers rebootRequired (it already holds a flashed image that waits for a
// reboot), Install returns a fatal error wrapping device.ErrPendingImage,
// because that image may be one fwagent never sent nor checked. Install does
// not reboot after flashing either.
func (c *Client) Install(ctx context.Context, imagePath string, progress device.ProgressFunc) error {
	if progress == nil {
		progress = func(device.InstallProgress) {}
	}
	err := c.install(ctx, imagePath, progress)
	var se *StatusError
	if errors.As(err, &se) && se.RebootRequired() {
		return pendingImageError(se)
	}
	return wrap("install", err)
}

// pendingImageError is the fatal error for an upload answered with
// rebootRequired. A reboot would boot an image that this upload did not
// send, perhaps the standard firmware that destroys an iDS-9632NXI-I8/16S.
func pendingImageError(se *StatusError) error {
	return &device.Error{Op: "install", Code: device.CodeRebootRequired, Transient: false,
		Err: fmt.Errorf("%w that this upload did not send; fwagent will not reboot into an image it has not proven: check what was flashed and reboot the device by hand (device reply: %w)", device.ErrPendingImage, se)}
}

func (c *Client) install(ctx context.Context, imagePath string, progress device.ProgressFunc) error {
	fi, err := os.Stat(imagePath)
	if err != nil {
		return fmt.Errorf("image: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("image %s is not a regular file", imagePath)
	}
	size := fi.Size()
	log := c.log.WithField("bytes", size)

	var res *uploadResult
	if c.postOnly.Load() {
		log.Info("uploading the image (multipart POST, as this device refused PUT before)")
		res, err = c.send(ctx, http.MethodPost, imagePath, size, progress)
	} else {
		log.Info("uploading the image (PUT)")
		res, err = c.send(ctx, http.MethodPut, imagePath, size, progress)
		if err == nil && putNotSupported(res) {
			log.Info("the device does not take PUT uploads; uploading the image again as multipart POST")
			c.postOnly.Store(true)
			res, err = c.send(ctx, http.MethodPost, imagePath, size, progress)
		}
	}
	if err != nil {
		if errors.Is(err, device.ErrUnreachable) {
			sent := int64(-1)
			if res != nil {
				sent = res.sent
			}
			return c.afterDrop(ctx, err, sent, size, progress)
		}
		return err
	}
	if e := res.err(); e != nil {
		return e
	}
	log.WithField("sent", res.sent).Info("the device accepted the image; following the flashing")
	return c.waitFlash(ctx, progress)
}

// uploadResult is the device's reply to an upload.
type uploadResult struct {
	method string
	status int
	body   []byte
	sent   int64
}

func (r *uploadResult) err() error {
	if r.status < 200 || r.status > 299 {
		return replyError(PathUpdateFirmware, r.status, r.body)
	}
	if doc, err := parseDocument(r.body); err == nil {
		if se := doc.statusError(r.status); se != nil {
			return se
		}
	}
	return nil
}

// putNotSupported reports whether the device refused the PUT as a method it
// does not take.
func putNotSupported(r *uploadResult) bool {
	if r.method != http.MethodPut {
		return false
	}
	if r.status == http.StatusMethodNotAllowed || r.status == http.StatusNotImplemented {
		return true
	}
	var se *StatusError
	if errors.As(r.err(), &se) {
		switch se.SubStatusCode {
		case "notSupport", "methodNotAllowed":
			return true
		case "", "invalidOperation":
			return se.StatusCode == 4
		}
	}
	return false
}

// send streams the image once with method and returns the reply. The body
// does not go through go-retryablehttp: it is not replayable cheaply. The
// request's GetBody reopens the image; only the authenticating transport
// uses it, to send the image once more when the device called the digest
// nonce of the upload stale. When the upload breaks, send returns the error
// and a result that holds only how many image bytes were sent.
func (c *Client) send(ctx context.Context, method, imagePath string, size int64, progress device.ProgressFunc) (*uploadResult, error) {
	var head, tail []byte
	length := size
	ctype := "application/octet-stream"
	if method == http.MethodPost {
		var err error
		head, tail, ctype, err = multipartFrame()
		if err != nil {
			return nil, err
		}
		length += int64(len(head) + len(tail))
	}
	// body is the image being sent; open replaces it with a fresh one.
	var body *countingBody
	open := func() (io.ReadCloser, error) {
		if body != nil {
			body.Close()
		}
		f, err := os.Open(imagePath)
		if err != nil {
			return nil, fmt.Errorf("image: %w", err)
		}
		body = &countingBody{f: f, total: size, progress: progress, step: max(size/100, 256<<10)}
		if method == http.MethodPost {
			return io.NopCloser(io.MultiReader(bytes.NewReader(head), body, bytes.NewReader(tail))), nil
		}
		return io.NopCloser(body), nil
	}
	r, err := open()
	if err != nil {
		return nil, err
	}
	defer func() { body.Close() }()

	uctx, cancel := context.WithTimeout(ctx, c.cfg.UploadTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(uctx, method, c.base.String()+PathUpdateFirmware, r)
	if err != nil {
		return nil, err
	}
	req.GetBody = open
	req.ContentLength = length
	req.Header.Set("Content-Type", ctype)
	start := time.Now()
	resp, err := c.upload.Do(req)
	sent := body.Sent()
	if err != nil {
		if ctx.Err() == nil && uctx.Err() != nil {
			return &uploadResult{method: method, sent: sent}, &device.Error{Op: "install", Code: device.CodeUploadTimeout, Transient: true,
				Err: fmt.Errorf("%w: the upload did not finish within %s (upload_timeout; %d of %d bytes sent): raise upload_timeout on a slow link", device.ErrUnreachable, c.cfg.UploadTimeout, sent, size)}
		}
		return &uploadResult{method: method, sent: sent}, transportError(ctx, PathUpdateFirmware, fmt.Errorf("%w (after %d of %d image bytes)", stripURL(err), sent, size))
	}
	defer resp.Body.Close()
	reply, err := readCapped(resp.Body)
	if err != nil && !errors.Is(err, ErrTooLarge) {
		return &uploadResult{method: method, sent: sent}, transportError(ctx, PathUpdateFirmware, fmt.Errorf("reading the reply to the upload: %w", err))
	}
	c.log.WithFields(map[string]any{"method": method, "status": resp.StatusCode, "sent": sent, "seconds": time.Since(start).Seconds()}).Debug("upload answered")
	return &uploadResult{method: method, status: resp.StatusCode, body: reply, sent: sent}, nil
}

// multipartFrame returns what goes before and after the file in a
// multipart/form-data body with the file in the field updateFile, and the
// Content-Type, so the body can be streamed with an exact Content-Length.
func multipartFrame() (head, tail []byte, contentType string, err error) {
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	h := textproto.MIMEHeader{}
	h.Set("Content-Disposition", `form-data; name="updateFile"; filename="digicap.dav"`)
	h.Set("Content-Type", "application/octet-stream")
	if _, err := mw.CreatePart(h); err != nil {
		return nil, nil, "", err
	}
	head = bytes.Clone(buf.Bytes())
	buf.Reset()
	if err := mw.Close(); err != nil {
		return nil, nil, "", err
	}
	return head, bytes.Clone(buf.Bytes()), mw.FormDataContentType(), nil
}

// afterDrop decides what a connection that broke during or right after the
// upload means. Only an upload that reached the device (no dial error) and
// sent every byte of the image can have been taken: anything less is a
// transient failure, whatever upgradeStatus says, since the device may be
// reporting on an image fwagent did not send. For a complete upload, if the
// device says it is flashing, the upload arrived and the install goes on;
// upgrading=false with percent=100 counts as a flash that already finished
// (recorders reset percent when they reboot), and the agent's check of the
// version after the reboot backs that reading up. Otherwise the drop is a
// transient failure.
func (c *Client) afterDrop(ctx context.Context, dropErr error, sent, size int64, progress device.ProgressFunc) error {
	if isDialError(dropErr) {
		return fmt.Errorf("%w; the upload never reached the device: retry the install", dropErr)
	}
	if sent != size {
		return fmt.Errorf("%w; the device did not get the whole image, so it cannot be flashing it: retry the install", dropErr)
	}
	c.log.WithError(dropErr).Warn("the connection broke right after the whole image was sent; asking the device whether it is flashing")
	st, err := c.status(ctx, c.api)
	if err != nil {
		if fatalWhileWaiting(err) {
			return err
		}
		code := device.CodeUnreachable
		var de *device.Error
		if errors.As(dropErr, &de) {
			code = de.Code
		}
		return &device.Error{Op: "install", Code: code, Transient: true,
			Err: fmt.Errorf("%w; and upgradeStatus did not answer either (%w): retry the install later", dropErr, err)}
	}
	if !st.Upgrading && st.Percent != 100 {
		return fmt.Errorf("%w; the device is not flashing (upgradeStatus upgrading=false, percent=%d): retry the install", dropErr, st.Percent)
	}
	c.log.WithField("percent", st.Percent).Info("the device is flashing the image despite the broken connection; following it")
	return c.waitFlash(ctx, progress)
}

// waitFlash polls upgradeStatus until upgrading is false, bounded by
// FlashTimeout. Transient failures (the device busy, briefly unreachable)
// are polled through; refused credentials and fatal device errors stop it.
func (c *Client) waitFlash(ctx context.Context, progress device.ProgressFunc) error {
	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, c.cfg.FlashTimeout)
	defer cancel()
	tick := time.NewTicker(c.cfg.PollInterval)
	defer tick.Stop()
	var last error
	lastPercent := -1
	timedOut := func() error {
		if parent.Err() != nil {
			return parent.Err()
		}
		msg := fmt.Sprintf("the device was still flashing after %s (flash_timeout): do not power it off; check it on site", c.cfg.FlashTimeout)
		if last != nil {
			msg += "; last error: " + last.Error()
		}
		return &device.Error{Op: "install", Code: device.CodeFlashTimeout, Transient: false, Err: errors.New(msg)}
	}
	for {
		st, err := c.status(ctx, c.once)
		if err != nil && ctx.Err() != nil {
			// flash_timeout ran out (or the caller gave up) while the
			// request was in flight.
			return timedOut()
		}
		switch {
		case err == nil:
			last = nil
			if st.Percent != lastPercent {
				progress(device.InstallProgress{Phase: "flash", Done: int64(st.Percent), Total: 100})
				lastPercent = st.Percent
			}
			if !st.Upgrading && st.Percent < 100 {
				// Not flashing and not at 100%: the flash was lost (the
				// recorder lost power and came back on its old firmware). A
				// flash is finished only at 100%.
				return &device.Error{Op: "install", Code: device.CodeFlashInterrupted, Transient: true,
					Err: fmt.Errorf("%w: the device reports upgrading=false at %d%%: the image was not taken; it is proven again before another try", device.ErrFlashInterrupted, st.Percent)}
			}
			if !st.Upgrading {
				if lastPercent != 100 {
					progress(device.InstallProgress{Phase: "flash", Done: 100, Total: 100})
				}
				c.log.Info("the device finished flashing")
				return nil
			}
		case fatalWhileWaiting(err) || !(device.IsTransient(err) || isTransientStatus(err)):
			return err
		default:
			last = err
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return timedOut()
		}
	}
}

func isTransientStatus(err error) bool {
	var se *StatusError
	return errors.As(err, &se) && se.Transient()
}

// countingBody reads the image and reports upload progress. After Close it
// neither reads nor reports, so no progress call can come from the HTTP
// transport's writer once the upload is over.
type countingBody struct {
	mu       sync.Mutex
	f        *os.File
	total    int64
	sent     int64
	reported int64
	step     int64
	progress device.ProgressFunc
	closed   bool
}

func (b *countingBody) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return 0, errors.New("upload body closed")
	}
	n, err := b.f.Read(p)
	b.sent += int64(n)
	if b.sent != b.reported && (b.sent-b.reported >= b.step || b.sent == b.total || err == io.EOF) {
		b.reported = b.sent
		b.progress(device.InstallProgress{Phase: "upload", Done: b.sent, Total: b.total})
	}
	return n, err
}

// Sent is how many image bytes were read for sending.
func (b *countingBody) Sent() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.sent
}

func (b *countingBody) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil
	}
	b.closed = true
	return b.f.Close()
}
