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
//     says the password was right but the nonce expired) on a request
//     without a body: it is answered once with the new nonce;
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
		probe, perr := http.NewRequestWithContext(req.Context(), http.MethodGet, req.URL.Scheme+"://"+req.URL.Host+t.probePath, nil)
		if perr != nil {
			closeBody()
			return nil, perr
		}
		res, err = t.base.RoundTrip(probe)
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

	// 2. Answer the challenge once.
	for attempt := 0; ; attempt++ {
		body, _ := readCapped(res.Body)
		res.Body.Close()
		if attempt == 0 {
			if locked, _, secs := parseLockInfo(body); locked {
				// Locked before we said anything: do not make it worse.
				closeBody()
				t.setLock(secs)
				return nil, &AuthError{Locked: true, LockSeconds: max(secs, 0), RetriesLeft: -1, Scheme: "none", NotSent: true}
			}
		}
		authReq := req.Clone(req.Context())
		scheme, aerr := t.authorize(authReq, res.Header)
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
		if attempt == 0 && !bodied && scheme == "digest" && staleChallenge(res.Header) {
			t.log.Debug("device said the digest nonce was stale; answering its new challenge once")
			res.Body = io.NopCloser(bytes.NewReader(body))
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

// authorize sets the Authorization header on req for the challenge in h and
// names the scheme used. It sends nothing.
func (t *authTransport) authorize(req *http.Request, h http.Header) (string, error) {
	offersBasic := false
	for _, v := range h.Values("WWW-Authenticate") {
		if digest.IsDigest(v) {
			chal, err := digest.ParseChallenge(v)
			if err != nil || !digest.CanDigest(chal) {
				continue
			}
			cred, err := digest.Digest(chal, digest.Options{
				Method:   req.Method,
				URI:      req.URL.RequestURI(),
				GetBody:  req.GetBody,
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
