package nvrsim

import (
	"crypto/md5"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// maxNonces bounds the nonce table so that a client hammering the challenge
// cannot grow the simulator's memory.
const maxNonces = 4096

// nonceInfo is what the simulator remembers about a nonce it issued.
type nonceInfo struct {
	issued time.Time
	seen   map[uint64]bool // nonce counts already used, to refuse replays
}

// authResult is the outcome of checking one request's credentials.
type authResult int

const (
	authOK      authResult = iota
	authMissing            // no usable Authorization: a challenge round-trip, not a failed login
	authStale              // right password, but the nonce is unknown, expired or replayed
	authFailed             // wrong user name or wrong response hash: a failed login
	authBad                // malformed header: 400, not a failed login
)

// newNonce issues a fresh random nonce. The caller holds s.mu.
func (s *Sim) newNonce(now time.Time) string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(fmt.Sprintf("nvrsim: no randomness for a nonce: %v", err))
	}
	n := hex.EncodeToString(b[:])
	if len(s.nonces) >= maxNonces {
		for k, v := range s.nonces {
			if now.Sub(v.issued) > s.cfg.NonceTTL || len(s.nonces) >= maxNonces {
				delete(s.nonces, k)
			}
		}
	}
	s.nonces[n] = &nonceInfo{issued: now, seen: map[uint64]bool{}}
	return n
}

// challenge sets the WWW-Authenticate headers of a 401. The caller holds s.mu.
func (s *Sim) challenge(h http.Header, stale bool) {
	now := s.now()
	staleWord := "FALSE"
	if stale {
		staleWord = "TRUE"
	}
	h.Add("WWW-Authenticate", fmt.Sprintf(
		`Digest qop="auth", realm=%q, nonce=%q, opaque=%q, algorithm=MD5, stale=%q`,
		s.cfg.Realm, s.newNonce(now), s.opaque, staleWord))
	if s.cfg.AllowBasic {
		h.Add("WWW-Authenticate", fmt.Sprintf(`Basic realm=%q`, s.cfg.Realm))
	}
}

// checkAuth checks r's Authorization header. The caller holds s.mu.
func (s *Sim) checkAuth(r *http.Request) (authResult, string) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return authMissing, "no credentials"
	}
	scheme, rest, _ := strings.Cut(h, " ")
	switch strings.ToLower(scheme) {
	case "basic":
		if !s.cfg.AllowBasic {
			return authMissing, "basic auth not offered"
		}
		raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(rest))
		if err != nil {
			return authBad, "basic credentials are not base64"
		}
		user, pass, ok := strings.Cut(string(raw), ":")
		if !ok {
			return authBad, "basic credentials lack a colon"
		}
		if !equal(user, s.cfg.User) || !equal(pass, s.cfg.Password) {
			return authFailed, "wrong basic credentials"
		}
		return authOK, ""
	case "digest":
	default:
		return authMissing, "unsupported scheme " + scheme
	}
	p, err := parseParams(rest)
	if err != nil {
		return authBad, err.Error()
	}
	for _, k := range []string{"username", "realm", "nonce", "uri", "response"} {
		if p[k] == "" {
			return authBad, "digest credentials lack " + k
		}
	}
	if alg := p["algorithm"]; alg != "" && !strings.EqualFold(alg, "MD5") {
		return authBad, "unsupported digest algorithm " + alg
	}
	if p["uri"] != r.RequestURI && p["uri"] != r.URL.RequestURI() {
		return authBad, fmt.Sprintf("digest uri %q does not match the request %q", p["uri"], r.RequestURI)
	}
	if p["realm"] != s.cfg.Realm {
		return authFailed, "wrong realm"
	}
	ha1 := md5hex(s.cfg.User + ":" + s.cfg.Realm + ":" + s.cfg.Password)
	ha2 := md5hex(r.Method + ":" + p["uri"])
	var want string
	var nc uint64
	switch qop := p["qop"]; qop {
	case "auth":
		if p["nc"] == "" || p["cnonce"] == "" {
			return authBad, "digest qop=auth needs nc and cnonce"
		}
		nc, err = strconv.ParseUint(p["nc"], 16, 32)
		if err != nil {
			return authBad, "digest nc is not hexadecimal"
		}
		want = md5hex(ha1 + ":" + p["nonce"] + ":" + p["nc"] + ":" + p["cnonce"] + ":auth:" + ha2)
	case "":
		want = md5hex(ha1 + ":" + p["nonce"] + ":" + ha2) // RFC 2069 compatibility
	default:
		return authBad, "unsupported qop " + qop
	}
	if !equal(p["username"], s.cfg.User) {
		return authFailed, "unknown user " + p["username"]
	}
	if !equal(strings.ToLower(p["response"]), want) {
		return authFailed, "wrong digest response (wrong password)"
	}
	ni, ok := s.nonces[p["nonce"]]
	if !ok || s.now().Sub(ni.issued) > s.cfg.NonceTTL {
		delete(s.nonces, p["nonce"])
		return authStale, "stale nonce"
	}
	if nc != 0 {
		if ni.seen[nc] {
			return authStale, "replayed nonce count"
		}
		if len(ni.seen) > 10000 {
			return authStale, "nonce used too often"
		}
		ni.seen[nc] = true
	}
	return authOK, ""
}

// equal compares secrets in constant time.
func equal(a, b string) bool {
	return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

func md5hex(s string) string {
	sum := md5.Sum([]byte(s))
	return hex.EncodeToString(sum[:])
}

// parseParams parses the comma separated key=value pairs of a digest header;
// values may be quoted strings with backslash escapes.
func parseParams(s string) (map[string]string, error) {
	out := map[string]string{}
	i := 0
	for {
		for i < len(s) && (s[i] == ' ' || s[i] == '\t' || s[i] == ',') {
			i++
		}
		if i >= len(s) {
			return out, nil
		}
		j := i
		for j < len(s) && s[j] != '=' && s[j] != ',' {
			j++
		}
		if j >= len(s) || s[j] != '=' {
			return nil, fmt.Errorf("digest parameter %q has no value", strings.TrimSpace(s[i:j]))
		}
		key := strings.ToLower(strings.TrimSpace(s[i:j]))
		j++
		for j < len(s) && s[j] == ' ' {
			j++
		}
		var val strings.Builder
		if j < len(s) && s[j] == '"' {
			j++
			closed := false
			for j < len(s) {
				c := s[j]
				if c == '\\' && j+1 < len(s) {
					val.WriteByte(s[j+1])
					j += 2
					continue
				}
				if c == '"' {
					closed = true
					j++
					break
				}
				val.WriteByte(c)
				j++
			}
			if !closed {
				return nil, fmt.Errorf("digest parameter %q has an unterminated quote", key)
			}
		} else {
			k := j
			for k < len(s) && s[k] != ',' {
				k++
			}
			val.WriteString(strings.TrimSpace(s[j:k]))
			j = k
		}
		out[key] = val.String()
		i = j
	}
}
