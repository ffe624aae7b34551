package isapi

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/icholy/digest"
	"github.com/sirupsen/logrus"
)

// authTransport authenticates requests with HTTP Digest (or Basic when
// allowed and the device offers nothing else), with lockout safety:
//
//   - every request is first sent without credentials, to get a fresh
//     challenge (no cached nonce can go stale and cost a failed login);
//   - a request with a body is preceded by a bodyless GET of probePath for
//     the challenge, so the body is sent once, authenticated;
//   - the authenticated request is sent exactly once; a 401 to it is an
//     *AuthError, returned as the round trip's error so nothing retries it.
//     The only exception is a digest challenge marked stale=true (the device
//     says the password was right but the nonce expired): a request without
//     a body answers the new challenge once; a request with a body and a
//     GetBody probes once more for a fresh nonce and sends its body once
//     more. A second stale nonce, or one that cannot be answered, is
//     ErrStaleNonce, never an *AuthError: the password was right;
//   - once the device says it locked the account, no login is attempted
//     until the lock should have ended.
type authTransport struct {
	base       http.RoundTripper
	username   string
	password   string
	allowBasic bool
	probePath  string
	log        logrus.FieldLogger
	now        func() time.Time

	mu          sync.Mutex
	lockedUntil time.Time
}

func (t *authTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	closeBody := func() {
		if req.Body != nil {
			req.Body.Close()
		}
	}
	if err := t.checkLock(); err != nil {
		closeBody()
		return nil, err
	}
	bodied := req.Body != nil && req.Body != http.NoBody

	// 1. Ask for a challenge without credentials.
	var res *http.Response
	var err error
	if bodied {
		res, err = t.probe(req)
		if err != nil {
			closeBody()
			return nil, err
		}
		if res.StatusCode != http.StatusUnauthorized {
			// The device wants no credentials.
			drain(res)
			return t.base.RoundTrip(req)
		}
	} else {
		res, err = t.base.RoundTrip(req.Clone(req.Context()))
		if err != nil || res.StatusCode != http.StatusUnauthorized {
			return res, err
		}
	}

	// 2. Answer the challenge once (twice only for a stale nonce).
	fresh := true // res answers a request without credentials
	for attempt := 0; ; attempt++ {
		body, _ := readCapped(res.Body)
		res.Body.Close()
		if fresh {
			if locked, _, secs := parseLockInfo(body); locked {
				// Locked before we said anything: do not make it worse.
				closeBody()
				t.setLock(secs)
				return nil, &AuthError{Locked: true, LockSeconds: max(secs, 0), RetriesLeft: -1, Scheme: "none", NotSent: true}
			}
		}
		authReq := req.Clone(req.Context())
		scheme, aerr := t.authorize(authReq, res.Header, bodied)
		if aerr != nil {
			closeBody()
			return nil, aerr
		}
		res, err = t.base.RoundTrip(authReq)
		if err != nil || res.StatusCode != http.StatusUnauthorized {
			return res, err
		}
		// A 401 to the authenticated request.
		body, _ = readCapped(res.Body)
		res.Body.Close()
		if scheme == "digest" && staleChallenge(res.Header) {
			if attempt > 0 || (bodied && req.GetBody == nil) {
				t.log.Warn("the device called the digest nonce stale again; not sending the credentials a third time")
				return nil, fmt.Errorf("%w: the device called a fresh digest nonce stale (is its clock jumping?): try again later", ErrStaleNonce)
			}
			if !bodied {
				t.log.Debug("device said the digest nonce was stale; answering its new challenge once")
				res.Body = io.NopCloser(bytes.NewReader(body))
				fresh = false
				continue
			}
			// The body is gone: reopen it and ask for a fresh nonce.
			t.log.Info("the device said the digest nonce of the upload was stale; asking for a fresh one and sending the image once more")
			nb, gerr := req.GetBody()
			if gerr != nil {
				return nil, gerr
			}
			req = req.Clone(req.Context())
			req.Body = nb
			res, err = t.probe(req)
			if err != nil {
				closeBody()
				return nil, err
			}
			if res.StatusCode != http.StatusUnauthorized {
				drain(res)
				return t.base.RoundTrip(req)
			}
			fresh = true
			continue
		}
		locked, left, secs := parseLockInfo(body)
		ae := &AuthError{Locked: locked, RetriesLeft: left, LockSeconds: max(secs, 0), Scheme: scheme}
		if locked {
			t.setLock(secs)
		}
		t.log.WithField("scheme", scheme).Error(ae.Error())
		return nil, ae
	}
}

// probe sends a bodyless GET of probePath to the host of req, for a
// challenge that a request with a body can answer.
func (t *authTransport) probe(req *http.Request) (*http.Response, error) {
	probe, err := http.NewRequestWithContext(req.Context(), http.MethodGet, req.URL.Scheme+"://"+req.URL.Host+t.probePath, nil)
	if err != nil {
		return nil, err
	}
	return t.base.RoundTrip(probe)
}

// authorize sets the Authorization header on req for the challenge in h and
// names the scheme used. It sends nothing.
//
// A request with a body is never answered with qop=auth-int: that would
// read the whole image once more to hash it.
func (t *authTransport) authorize(req *http.Request, h http.Header, bodied bool) (string, error) {
	offersBasic := false
	for _, v := range h.Values("WWW-Authenticate") {
		if digest.IsDigest(v) {
			chal, err := digest.ParseChallenge(v)
			if err != nil || !digest.CanDigest(chal) {
				continue
			}
			if bodied && len(chal.QOP) > 0 && !chal.SupportsQOP("auth") {
				continue
			}
			var getBody func() (io.ReadCloser, error)
			if !bodied {
				getBody = req.GetBody
			}
			cred, err := digest.Digest(chal, digest.Options{
				Method:   req.Method,
				URI:      req.URL.RequestURI(),
				GetBody:  getBody,
				Count:    1,
				Username: t.username,
				Password: t.password,
			})
			if err != nil {
				continue
			}
			req.Header.Set("Authorization", cred.String())
			return "digest", nil
		}
		if len(v) >= 5 && strings.EqualFold(v[:5], "basic") {
			offersBasic = true
		}
	}
	if offersBasic {
		if !t.allowBasic {
			return "", ErrBasicNotAllowed
		}
		req.SetBasicAuth(t.username, t.password)
		return "basic", nil
	}
	return "", fmt.Errorf("%w: the device answered 401 without a usable Digest challenge", ErrBadReply)
}

func staleChallenge(h http.Header) bool {
	for _, v := range h.Values("WWW-Authenticate") {
		if chal, err := digest.ParseChallenge(v); err == nil && chal.Stale {
			return true
		}
	}
	return false
}

func (t *authTransport) checkLock() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if left := t.lockedUntil.Sub(t.now()); left > 0 {
		return &AuthError{Locked: true, LockSeconds: int(left.Seconds() + 0.5), RetriesLeft: -1, Scheme: "none", NotSent: true}
	}
	return nil
}

// setLock remembers that the device locked the account for secs seconds
// (or an unknown time: then 60 s, the shortest lock seen on these devices).
func (t *authTransport) setLock(secs int) {
	if secs <= 0 {
		secs = 60
	}
	t.mu.Lock()
	t.lockedUntil = t.now().Add(time.Duration(secs) * time.Second)
	t.mu.Unlock()
}

func (t *authTransport) CloseIdleConnections() {
	if ci, ok := t.base.(interface{ CloseIdleConnections() }); ok {
		ci.CloseIdleConnections()
	}
}

func drain(res *http.Response) {
	_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, maxReply))
	res.Body.Close()
}
