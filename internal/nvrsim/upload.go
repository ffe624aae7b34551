package nvrsim

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"os"
	"strings"
)

// errDropped means the simulator cut the upload on purpose (DropUploadAfter).
var errDropped = errors.New("upload dropped by the DropUploadAfter fault")

// serveUpload receives an image by PUT (the bare body) or POST (multipart
// field updateFile), streaming it to a temporary file while hashing it, then
// checks it and starts flashing.
func (s *Sim) serveUpload(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	faults := s.faults
	switch {
	case r.Method == http.MethodPut && faults.PutNotSupported:
		s.mu.Unlock()
		// Drain so that the client reads the answer rather than a broken pipe.
		_, _ = io.Copy(io.Discard, r.Body)
		s.writeStatus(w, r, "notSupport")
		return
	case s.st.Receiving || s.st.Upgrading:
		s.mu.Unlock()
		s.writeStatus(w, r, "upgrading")
		return
	case s.st.Pending != nil:
		s.mu.Unlock()
		s.writeStatus(w, r, "rebootRequired")
		return
	}
	s.st.Receiving = true
	s.notify()
	s.mu.Unlock()

	up := &Upload{Method: r.Method}
	img, err := s.receive(r, up, faults.DropUploadAfter)

	s.mu.Lock()
	defer s.mu.Unlock()
	defer s.notify()
	s.st.Receiving = false
	s.st.LastUpload = up
	log := s.cfg.Logger.WithFields(map[string]any{"method": r.Method, "bytes": up.Bytes})
	if errors.Is(err, errDropped) {
		up.Result = "dropped"
		log.Warn("fault: upload connection dropped")
		s.unlockAnd(func() { hangUp(w) })
		return
	}
	if err != nil {
		var rerr *receiveError
		if errors.As(err, &rerr) {
			up.Result = rerr.sub
			log.WithError(err).Warn("upload refused")
			s.unlockAnd(func() { s.writeStatus(w, r, rerr.sub) })
			return
		}
		// Usually the client went away mid-body; answer in case it did not.
		up.Result = "incomplete"
		log.WithError(err).Warn("upload incomplete")
		s.unlockAnd(func() { s.writeStatus(w, r, "badParameters") })
		return
	}
	s.st.Uploads++
	s.st.LastUploadSHA256 = up.SHA256
	up.Image = &img
	sub := ""
	switch {
	case faults.RejectUpload != "":
		sub = faults.RejectUpload
		log.WithField("sub_status", sub).Warn("fault: upload rejected")
	case img.Model == "" && !isProtected(s.st.Model):
		sub = "badDevType"
		log.Warn("upload refused: the image has no fwagent.id identity entry, so the simulator cannot tell its model")
	case img.Model != "" && !strings.EqualFold(strings.TrimSpace(img.Model), strings.TrimSpace(s.st.Model)):
		sub = "badDevType"
		log.WithField("image_model", img.Model).Warn("upload refused: image is for another model")
	}
	if sub != "" {
		up.Result = sub
		s.unlockAnd(func() { s.writeStatus(w, r, sub) })
		return
	}
	up.Result = "flashing"
	s.startFlash(img)
	if faults.DropUploadAfter > 0 {
		log.Warn("fault: connection dropped at the end of the upload, flashing goes on")
		s.unlockAnd(func() { hangUp(w) })
		return
	}
	s.unlockAnd(func() { s.writeStatus(w, r, "ok") })
}

// unlockAnd runs f without s.mu held. The caller holds s.mu.
func (s *Sim) unlockAnd(f func()) {
	s.mu.Unlock()
	defer s.mu.Lock()
	f()
}

// receiveError is an upload refused with a subStatusCode.
type receiveError struct {
	sub string
	err error
}

func (e *receiveError) Error() string { return e.sub + ": " + e.err.Error() }
func (e *receiveError) Unwrap() error { return e.err }

// receive streams the image to a temporary file, hashing it as it arrives,
// and inspects it. Memory use does not grow with the image.
func (s *Sim) receive(r *http.Request, up *Upload, dropAfter int64) (Image, error) {
	body := io.Reader(r.Body)
	if r.Method == http.MethodPost {
		part, err := updateFilePart(r)
		if err != nil {
			return Image{}, err
		}
		defer part.Close()
		body = part
	}
	f, err := os.CreateTemp(s.cfg.TempDir, "nvrsim-upload-*.dav")
	if err != nil {
		return Image{}, &receiveError{sub: "deviceError", err: fmt.Errorf("cannot store the upload: %w", err)}
	}
	defer os.Remove(f.Name())
	defer f.Close()
	h := sha256.New()
	src := body
	if dropAfter > 0 {
		src = io.LimitReader(body, dropAfter)
	}
	n, err := io.Copy(io.MultiWriter(f, h), src)
	up.Bytes = n
	if err != nil {
		return Image{}, fmt.Errorf("reading the upload body: %w", err)
	}
	if dropAfter > 0 && n == dropAfter {
		var one [1]byte
		if m, _ := io.ReadFull(body, one[:]); m > 0 {
			return Image{}, errDropped
		}
	}
	if r.Method == http.MethodPut && r.ContentLength > 0 && n != r.ContentLength {
		return Image{}, fmt.Errorf("body ended after %d of %d bytes", n, r.ContentLength)
	}
	up.SHA256 = hex.EncodeToString(h.Sum(nil))
	if err := f.Close(); err != nil {
		return Image{}, &receiveError{sub: "deviceError", err: err}
	}
	img, err := s.cfg.Inspect(f.Name(), n)
	if err != nil {
		return Image{}, &receiveError{sub: "badFlash", err: err}
	}
	img.Size = n
	img.SHA256 = up.SHA256
	return img, nil
}

// updateFilePart finds the multipart field updateFile in a POST upload.
func updateFilePart(r *http.Request) (io.ReadCloser, error) {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/form-data" {
		return nil, &receiveError{sub: "badParameters", err: fmt.Errorf("POST upload is %q, not multipart/form-data", r.Header.Get("Content-Type"))}
	}
	mr, err := r.MultipartReader()
	if err != nil {
		return nil, &receiveError{sub: "badParameters", err: err}
	}
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			return nil, &receiveError{sub: "badParameters", err: errors.New("multipart upload has no updateFile field")}
		}
		if err != nil {
			return nil, &receiveError{sub: "badParameters", err: fmt.Errorf("reading the multipart upload: %w", err)}
		}
		if p.FormName() == "updateFile" {
			return p, nil
		}
		_, _ = io.Copy(io.Discard, p)
		p.Close()
	}
}
