// Package lab starts a whole fwagent world on loopback: an NVR simulator, an
// update server holding a signed manifest and its images, a throwaway
// signing key and an agent config pointing at both. The demo, the end-to-end
// tests and the benchmarks use it so that they exercise the agent's ordinary
// code paths. It is for tests and demonstrations only.
package lab

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fwagent/fwagent/agent/config"
	"github.com/fwagent/fwagent/internal/nvrsim"
	"github.com/fwagent/fwagent/internal/testimage"
	"github.com/fwagent/fwagent/internal/testport"
	"github.com/fwagent/fwagent/manifest"
)

// Release describes one release the lab publishes, and its image.
type Release struct {
	ID       string
	Models   []string // default: the simulator's model
	Version  string
	Variant  string // custom | standard
	Build    string
	Size     int64 // image size in bytes; 0 = a small image
	TermsURL string
	Notes    string
	Requires *manifest.Requires
	Rollout  *manifest.Rollout

	// ImageModel, ImageVersion and ImageVariant are written into the image's
	// identity entry (default: the release's own), to build lying releases.
	ImageModel, ImageVersion, ImageVariant string
	// Corrupt builds a structurally broken image.
	Corrupt testimage.Corruption
	// WrongDigest publishes a SHA-256 that does not match the image.
	WrongDigest bool
	// WrongSize publishes a size one byte off.
	WrongSize bool
}

// Options configure a lab.
type Options struct {
	// Dir holds everything (keys, images, config, state); required.
	Dir string
	// Device configures the simulator (nvrsim defaults for what is empty).
	Device nvrsim.Config
	// Releases are published in the first manifest.
	Releases []Release
	// Serial of the first manifest (default 1).
	Serial int64
	// Valid is how long the manifest stays valid (default 30 days).
	Valid time.Duration
	// NoTerms leaves terms_accepted false in the config.
	NoTerms bool
	// ExtraYAML is appended to the generated agent config.
	ExtraYAML string
	// Now is the clock used for issued and expires (default time.Now).
	Now func() time.Time
	// Keys is how many signing keys the lab makes (default 2, as two
	// integrators co-signing, so that a release for the protected model
	// has its second proof); the config trusts all of them and Publish
	// signs with all of them.
	Keys int
	// Threshold is the config's manifest.threshold (default 1).
	Threshold int
	// Password, when set, is written into the agent config instead of the
	// simulator's password (wrong credentials).
	Password string
	// Site, when set, makes the lab a site: one simulated recorder per
	// entry (Device is then ignored; each entry's Device gets the same
	// defaults) and a config with devices: instead of device:.
	Site []SiteDevice
}

// SiteDevice is one recorder of a lab site.
type SiteDevice struct {
	Name   string        // its name in the config (default nvr-N)
	Device nvrsim.Config // the simulated recorder
	// Password, when set, is written into the config instead of the
	// recorder's password (wrong credentials).
	Password string
	// YAML is appended to the recorder's devices: entry (indented by the
	// caller as "    key: value" lines), e.g. its own groups.
	YAML string
	// ISAPI replaces the lab's isapi settings of this recorder by key, e.g.
	// {"reboot_timeout": "1s", "down_grace": "100ms"}.
	ISAPI map[string]string
}

// Lab is a running world: simulator, update server, key and config.
type Lab struct {
	Dir string
	// Sim is the recorder (a site's first). A test may Close it to make
	// the recorder vanish: a lab's single recorder listens on a port the
	// lab keeps reserved until Close, so that connections to it are then
	// refused, never answered by a server another test binary started.
	Sim *nvrsim.Server
	// Site is the site's recorders (Options.Site); nil otherwise.
	Site       *nvrsim.Site
	Updates    *httptest.Server
	Key        ed25519.PrivateKey   // the first signing key
	Keys       []ed25519.PrivateKey // every signing key the config trusts
	PubPath    string               // the first key's public key file
	PubPaths   []string
	ConfigPath string
	StateDir   string
	LogDir     string

	// ManifestRequests counts GETs of the manifest; NotModified counts
	// those answered 304. ImageBytes counts image bytes served,
	// ImageRequests the image GETs.
	ManifestRequests, NotModified, ImageBytes, ImageRequests atomic.Int64

	opts     Options
	simPort  *testport.Reservation // the single recorder's port
	mu       sync.Mutex
	manifest *manifest.Manifest
	envelope []byte
	etag     string
	modTime  time.Time
}

// Start builds the keys, images and manifest, starts the simulator and the
// update server, and writes the agent config.
func Start(opts Options) (_ *Lab, err error) {
	if opts.Dir == "" {
		return nil, errors.New("lab: Options.Dir is required")
	}
	if opts.Serial == 0 {
		opts.Serial = 1
	}
	if opts.Valid == 0 {
		opts.Valid = 30 * 24 * time.Hour
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	l := &Lab{Dir: opts.Dir, opts: opts, StateDir: filepath.Join(opts.Dir, "state"), LogDir: filepath.Join(opts.Dir, "log")}
	defer func() {
		if err != nil {
			l.Close()
		}
	}()
	for _, d := range []string{l.wwwDir(), filepath.Join(l.wwwDir(), "images"), filepath.Join(opts.Dir, "keys")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, err
		}
	}
	if opts.Keys == 0 {
		opts.Keys = 2
	}
	for i := 0; i < opts.Keys; i++ {
		_, priv, err := manifest.GenerateKey()
		if err != nil {
			return nil, err
		}
		name := "lab"
		if i > 0 {
			name = fmt.Sprintf("lab%d", i+1)
		}
		_, pub, err := manifest.WriteKeyPair(filepath.Join(opts.Dir, "keys", name), priv)
		if err != nil {
			return nil, err
		}
		l.Keys = append(l.Keys, priv)
		l.PubPaths = append(l.PubPaths, pub)
	}
	l.Key, l.PubPath = l.Keys[0], l.PubPaths[0]
	if opts.Device.RebootDelay == 0 {
		// Long enough for the agent to see the recorder go down.
		opts.Device.RebootDelay = 200 * time.Millisecond
	}
	if opts.Device.TempDir == "" {
		opts.Device.TempDir = filepath.Join(opts.Dir, "sim")
		if err := os.MkdirAll(opts.Device.TempDir, 0o700); err != nil {
			return nil, err
		}
	}
	if len(opts.Site) > 0 {
		recs := make([]nvrsim.SiteRecorder, len(opts.Site))
		for i, d := range opts.Site {
			if d.Device.RebootDelay == 0 {
				d.Device.RebootDelay = opts.Device.RebootDelay
			}
			if d.Device.TempDir == "" {
				d.Device.TempDir = opts.Device.TempDir
			}
			if d.Name == "" {
				d.Name = fmt.Sprintf("nvr-%d", i+1)
			}
			opts.Site[i] = d
			recs[i] = nvrsim.SiteRecorder{Name: d.Name, Config: d.Device}
		}
		if l.Site, err = nvrsim.StartSite(recs, 0); err != nil {
			return nil, err
		}
		l.Sim = l.Site.Recorders[0]
		l.opts.Site = opts.Site
	} else {
		if l.simPort, err = testport.Reserve(); err != nil {
			return nil, err
		}
		if l.Sim, err = nvrsim.Listen(l.simPort.Addr(), opts.Device); err != nil {
			return nil, err
		}
	}
	l.Updates = httptest.NewServer(http.HandlerFunc(l.serve))
	m := &manifest.Manifest{Schema: manifest.SchemaVersion, Serial: opts.Serial, Releases: []manifest.Release{}}
	for _, r := range opts.Releases {
		rel, err := l.BuildRelease(r)
		if err != nil {
			return nil, err
		}
		m.Releases = append(m.Releases, rel)
	}
	if err := l.Publish(m); err != nil {
		return nil, err
	}
	if err := l.writeConfig(); err != nil {
		return nil, err
	}
	return l, nil
}

func (l *Lab) wwwDir() string { return filepath.Join(l.Dir, "www") }

// ImagePath is where the image of release id is served from.
func (l *Lab) ImagePath(id string) string {
	return filepath.Join(l.wwwDir(), "images", id+".dav")
}

// ManifestURL is the URL the agent fetches the manifest from.
func (l *Lab) ManifestURL() string { return l.Updates.URL + "/manifest.json" }

// BuildRelease writes the release's image, served from now on, and
// describes it, ready to add to a manifest and Publish.
func (l *Lab) BuildRelease(r Release) (manifest.Release, error) {
	models := r.Models
	if len(models) == 0 {
		models = []string{l.Sim.Config().Model}
	}
	spec := testimage.Spec{
		Model:   firstNonEmpty(r.ImageModel, models[0]),
		Version: firstNonEmpty(r.ImageVersion, r.Version),
		Variant: firstNonEmpty(r.ImageVariant, r.Variant),
		Build:   r.Build,
		Size:    r.Size,
		Corrupt: r.Corrupt,
	}
	size, sum, err := testimage.WriteFile(l.ImagePath(r.ID), spec)
	if err != nil {
		return manifest.Release{}, fmt.Errorf("lab: image of %s: %w", r.ID, err)
	}
	if r.WrongDigest {
		b, _ := hex.DecodeString(sum)
		b[0] ^= 0xff
		sum = hex.EncodeToString(b)
	}
	if r.WrongSize {
		size++
	}
	return manifest.Release{
		ID:       r.ID,
		Models:   models,
		Version:  r.Version,
		Build:    r.Build,
		Variant:  r.Variant,
		Image:    manifest.Image{URLs: []string{l.Updates.URL + "/images/" + r.ID + ".dav"}, Size: size, SHA256: sum},
		Requires: r.Requires,
		TermsURL: r.TermsURL,
		Notes:    r.Notes,
		Rollout:  r.Rollout,
	}, nil
}

// Manifest returns a copy of the published manifest, to edit and Publish.
func (l *Lab) Manifest() *manifest.Manifest {
	l.mu.Lock()
	defer l.mu.Unlock()
	m := *l.manifest
	m.Releases = append([]manifest.Release(nil), l.manifest.Releases...)
	return &m
}

// Publish signs m with every lab key (issued now, valid for Options.Valid)
// and serves it from now on. The caller bumps the serial.
func (l *Lab) Publish(m *manifest.Manifest) error {
	return l.PublishSigned(m, l.Keys...)
}

// PublishSigned is Publish with the given signing keys only (too few, or
// keys the config does not trust).
func (l *Lab) PublishSigned(m *manifest.Manifest, keys ...ed25519.PrivateKey) error {
	now := l.opts.Now().UTC().Truncate(time.Second)
	if m.Issued.IsZero() {
		m.Issued = now
	}
	if m.Expires.IsZero() {
		m.Expires = now.Add(l.opts.Valid)
	}
	payload, err := m.Marshal(manifest.ParseOptions{})
	if err != nil {
		return err
	}
	env, err := manifest.Sign(payload, keys...)
	if err != nil {
		return err
	}
	return l.PublishEnvelope(m, env)
}

// PublishEnvelope serves env as it is (to publish forged or broken
// manifests); m is what Manifest returns afterwards.
func (l *Lab) PublishEnvelope(m *manifest.Manifest, env []byte) error {
	sum := sha256.Sum256(env)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.manifest, l.envelope = m, env
	l.etag = `"` + hex.EncodeToString(sum[:8]) + `"`
	l.modTime = time.Now()
	return os.WriteFile(filepath.Join(l.wwwDir(), "manifest.json"), env, 0o600)
}

// serve is the update server: the manifest with an ETag (so unchanged polls
// are answered 304) and the images with Range support.
func (l *Lab) serve(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.URL.Path == "/manifest.json":
		l.ManifestRequests.Add(1)
		l.mu.Lock()
		env, etag, mod := l.envelope, l.etag, l.modTime
		l.mu.Unlock()
		w.Header().Set("ETag", etag)
		w.Header().Set("Content-Type", "application/json")
		rec := &statusRecorder{ResponseWriter: w}
		http.ServeContent(rec, r, "manifest.json", mod, bytes.NewReader(env))
		if rec.status == http.StatusNotModified {
			l.NotModified.Add(1)
		}
	case strings.HasPrefix(r.URL.Path, "/images/"):
		name := filepath.Base(r.URL.Path)
		f, err := os.Open(filepath.Join(l.wwwDir(), "images", name))
		if err != nil {
			http.NotFound(w, r)
			return
		}
		defer f.Close()
		fi, err := f.Stat()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		if r.Method == http.MethodGet {
			l.ImageRequests.Add(1)
		}
		rec := &statusRecorder{ResponseWriter: w}
		http.ServeContent(rec, r, name, fi.ModTime(), f)
		l.ImageBytes.Add(rec.bytes)
	default:
		http.NotFound(w, r)
	}
}

type statusRecorder struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (s *statusRecorder) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	n, err := s.ResponseWriter.Write(b)
	s.bytes += int64(n)
	return n, err
}

// writeConfig writes the agent config pointing at the simulator and the
// update server, with short timeouts fit for loopback.
func (l *Lab) writeConfig() error {
	var b strings.Builder
	fmt.Fprintf(&b, "# Generated by fwagent's lab: a simulator and an update server on loopback.\n")
	fmt.Fprintf(&b, "terms_accepted: %v\n", !l.opts.NoTerms)
	if l.Site != nil {
		b.WriteString("devices:\n")
		for i, srv := range l.Site.Recorders {
			d := l.opts.Site[i]
			fmt.Fprintf(&b, "  - name: %s\n    backend: isapi\n    isapi:\n", l.Site.Names[i])
			writeISAPI(&b, "      ", srv, d.Password, d.ISAPI)
			b.WriteString(d.YAML)
		}
	} else {
		fmt.Fprintf(&b, "device:\n  backend: isapi\n  isapi:\n")
		writeISAPI(&b, "    ", l.Sim, l.opts.Password, nil)
	}
	fmt.Fprintf(&b, "manifest:\n  urls: [%s]\n  keys: [%s]\n  threshold: %d\n", l.ManifestURL(), strings.Join(l.PubPaths, ", "), max(l.opts.Threshold, 1))
	fmt.Fprintf(&b, "state_dir: %s\n", l.StateDir)
	fmt.Fprintf(&b, "log:\n  dir: %s\n  level: info\n", l.LogDir)
	fmt.Fprintf(&b, "poll:\n  interval: 1h\n  jitter: 1m\n")
	// Retries pause milliseconds on loopback, through the config.
	fmt.Fprintf(&b, "retry:\n  wait_min: 1ms\n  wait_max: 5ms\n")
	b.WriteString(l.opts.ExtraYAML)
	l.ConfigPath = filepath.Join(l.Dir, "agent.yaml")
	return os.WriteFile(l.ConfigPath, []byte(b.String()), 0o600)
}

// writeISAPI writes the isapi settings of one simulated recorder.
func writeISAPI(b *strings.Builder, indent string, srv *nvrsim.Server, password string, set map[string]string) {
	sc := srv.Config()
	if password == "" {
		password = sc.Password
	}
	fmt.Fprintf(b, "%surl: %s\n%susername: %s\n%spassword: %q\n", indent, srv.URL(), indent, sc.User, indent, password)
	if sc.TLS {
		fmt.Fprintf(b, "%scert_sha256: %s\n", indent, srv.Fingerprint())
	}
	for _, kv := range [][2]string{{"request_timeout", "10s"}, {"upload_timeout", "10m"}, {"flash_timeout", "5m"}, {"reboot_timeout", "2m"}, {"down_grace", "5s"}, {"poll_interval", "50ms"}} {
		v := kv[1]
		if o, ok := set[kv[0]]; ok {
			v = o
		}
		b.WriteString(indent + kv[0] + ": " + v + "\n")
	}
}

// Config loads the generated agent config.
func (l *Lab) Config() (*config.Config, error) { return config.Load(l.ConfigPath) }

// Close stops the servers.
func (l *Lab) Close() {
	if l.Updates != nil {
		l.Updates.Close()
	}
	if l.Site != nil {
		l.Site.Close()
	} else if l.Sim != nil {
		_ = l.Sim.Close()
	}
	if l.simPort != nil {
		_ = l.simPort.Close()
	}
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

// Envelope returns the signed envelope served now.
func (l *Lab) Envelope() []byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]byte(nil), l.envelope...)
}
