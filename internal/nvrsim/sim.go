package nvrsim

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"strconv"
	"sync"
	"time"
)

// Image is what the simulator learned about an uploaded image.
type Image struct {
	Model   string `json:"model"`
	Version string `json:"version"` // as written in the image, e.g. "4.1.25"
	Build   string `json:"build,omitempty"`
	Variant string `json:"variant"`
	Size    int64  `json:"size"`
	SHA256  string `json:"sha256"`
}

// Upload records one upload request the simulator received.
type Upload struct {
	Method string `json:"method"` // PUT or POST
	Bytes  int64  `json:"bytes"`  // body bytes received
	SHA256 string `json:"sha256,omitempty"`
	Result string `json:"result"` // "flashing", "dropped", or the subStatusCode it was refused with
	Image  *Image `json:"image,omitempty"`
}

// State is a snapshot of the simulated recorder, as tests and /debug/state
// see it.
type State struct {
	Model     string `json:"model"`
	Firmware  string `json:"firmware"` // as deviceInfo reports it, e.g. "V4.1.20"
	Build     string `json:"build"`    // e.g. "build 230619"
	Variant   string `json:"variant"`  // "custom" or "standard"
	Serial    string `json:"serial"`
	Namespace string `json:"namespace"`

	// Bricked is true once the recorder was damaged; it never answers ISAPI again.
	Bricked     bool   `json:"bricked"`
	BrickReason string `json:"brick_reason,omitempty"`

	Installs int `json:"installs"` // images flashed to completion
	Reboots  int `json:"reboots"`  // reboots started

	FailedLogins      int  `json:"failed_logins"`       // in a row, since the last good login or unlock
	TotalFailedLogins int  `json:"total_failed_logins"` // ever
	Locked            bool `json:"locked"`
	LockSecondsLeft   int  `json:"lock_seconds_left,omitempty"`

	Receiving bool   `json:"receiving"` // an upload body is arriving
	Upgrading bool   `json:"upgrading"`
	Percent   int    `json:"percent"`
	Pending   *Image `json:"pending,omitempty"` // flashed, active after the next reboot
	Rebooting bool   `json:"rebooting"`         // down: every ISAPI connection is closed

	Uploads          int     `json:"uploads"` // upload requests whose body arrived in full
	LastUpload       *Upload `json:"last_upload,omitempty"`
	LastUploadSHA256 string  `json:"last_upload_sha256,omitempty"`
	Requests         int     `json:"requests"` // ISAPI requests that reached the recorder

	// Disks are the recorder's disks with the status they report (the
	// DiskStatus fault applied).
	Disks []Disk `json:"disks,omitempty"`
	// Channels are the camera channels; none when Config.Channels < 0.
	Channels []Channel `json:"channels,omitempty"`
	// ConfigExports counts configuration files exported in full.
	ConfigExports int `json:"config_exports"`

	Faults Faults `json:"faults"`
}

// Sim is a simulated recorder. Its Handler serves ISAPI and /debug/state.
// It is safe for concurrent use.
type Sim struct {
	cfg    Config
	opaque string
	blob   []byte // the configuration file System/configurationData exports

	mu          sync.Mutex
	st          State
	faults      Faults
	waiters     []*waiter // Waits whose condition did not hold yet
	nonces      map[string]*nonceInfo
	lockedUntil time.Time
	gen         int // bumps on every flash or reboot, to retire stale timers
	timers      []*time.Timer
	closed      bool
}

// New returns a simulated recorder for cfg, for tests whose configuration
// is a literal. It panics if cfg is invalid (an unknown namespace or
// variant, a negative duration); NewChecked returns that error instead.
func New(cfg Config) *Sim {
	s, err := NewChecked(cfg)
	if err != nil {
		panic(err)
	}
	return s
}

// NewChecked returns a simulated recorder for cfg, or an error naming the
// bad configuration field.
func NewChecked(cfg Config) (*Sim, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	s := &Sim{
		cfg:    cfg,
		opaque: hex.EncodeToString(b[:]),
		nonces: map[string]*nonceInfo{},
	}
	s.st = State{
		Model:     cfg.Model,
		Firmware:  cfg.Firmware,
		Build:     cfg.Build,
		Variant:   cfg.Variant,
		Serial:    cfg.Serial,
		Namespace: cfg.Namespace,
		Disks:     append([]Disk(nil), cfg.Disks...),
	}
	for i := 1; i <= cfg.Channels; i++ {
		s.st.Channels = append(s.st.Channels, Channel{ID: i, Online: true})
	}
	s.blob = configBlob(cfg.Serial, cfg.ConfigSize)
	return s, nil
}

// Config returns the simulator's configuration with defaults filled in.
func (s *Sim) Config() Config { return s.cfg }

func (s *Sim) now() time.Time { return s.cfg.Now() }

// State returns a snapshot of the recorder.
func (s *Sim) State() State {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.snapshot()
}

// snapshot copies the state. The caller holds s.mu.
func (s *Sim) snapshot() State {
	st := s.st
	st.Faults = s.faults.clone()
	st.Channels = append([]Channel(nil), s.st.Channels...)
	st.Disks = append([]Disk(nil), s.st.Disks...)
	for i := range st.Disks {
		if v, ok := s.faults.DiskStatus[strconv.Itoa(st.Disks[i].ID)]; ok {
			st.Disks[i].Status = v
		}
	}
	if left := s.lockedUntil.Sub(s.now()); left > 0 {
		st.Locked = true
		st.LockSecondsLeft = int((left + time.Second - 1) / time.Second)
	}
	if s.st.Pending != nil {
		p := *s.st.Pending
		st.Pending = &p
	}
	if s.st.LastUpload != nil {
		u := *s.st.LastUpload
		if u.Image != nil {
			img := *u.Image
			u.Image = &img
		}
		st.LastUpload = &u
	}
	return st
}

// waiter is one Wait: cond is checked after every change, done closed
// once it held.
type waiter struct {
	cond func(State) bool
	done chan struct{}
}

// notify checks the condition of every Wait against the state as it is
// now, so that a Wait sees every state the recorder passes through, even
// one that lasts less than the waiting goroutine takes to be scheduled.
// The caller holds s.mu.
func (s *Sim) notify() {
	if len(s.waiters) == 0 {
		return
	}
	st := s.snapshot()
	kept := s.waiters[:0]
	for _, w := range s.waiters {
		if w.cond(st) {
			close(w.done)
			continue
		}
		kept = append(kept, w)
	}
	clear(s.waiters[len(kept):])
	s.waiters = kept
}

// Wait blocks until cond holds for the recorder's state, or ctx ends. It
// checks cond at once and again at every change, as the change is made,
// never by polling: a state that lasts an instant (a flash of a few
// milliseconds) is not missed. cond runs with the simulator locked and
// must not call it.
func (s *Sim) Wait(ctx context.Context, cond func(State) bool) error {
	s.mu.Lock()
	if cond(s.snapshot()) {
		s.mu.Unlock()
		return nil
	}
	w := &waiter{cond: cond, done: make(chan struct{})}
	s.waiters = append(s.waiters, w)
	s.mu.Unlock()
	select {
	case <-w.done:
		return nil
	case <-ctx.Done():
		s.mu.Lock()
		defer s.mu.Unlock()
		select {
		case <-w.done: // it held as ctx ended
			return nil
		default:
		}
		s.waiters = slices.DeleteFunc(s.waiters, func(x *waiter) bool { return x == w })
		return ctx.Err()
	}
}

// SetFaults replaces the fault knobs.
func (s *Sim) SetFaults(f Faults) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = f.clone()
	s.cfg.Logger.WithField("faults", f).Info("fault knobs set")
	s.notify()
}

// Faults returns the fault knobs as they are now (counters count down).
func (s *Sim) Faults() Faults {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.faults.clone()
}

// ExpireNonces forgets every digest nonce issued so far, so that the next
// request carrying one gets a 401 with stale=TRUE. A test aid.
func (s *Sim) ExpireNonces() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nonces = map[string]*nonceInfo{}
}

// Close stops the simulator's timers. Handlers keep answering, but flashing
// and reboots in progress never finish.
func (s *Sim) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	for _, t := range s.timers {
		t.Stop()
	}
	s.timers = nil
}

// after runs f with s.mu held once d passed, unless the simulator closed or
// (for gen >= 0) a newer flash or reboot moved s.gen on. The caller holds s.mu.
func (s *Sim) after(d time.Duration, gen int, f func()) {
	if s.closed {
		return
	}
	var t *time.Timer
	t = time.AfterFunc(d, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		for i, x := range s.timers {
			if x == t {
				s.timers = append(s.timers[:i], s.timers[i+1:]...)
				break
			}
		}
		if s.closed || (gen >= 0 && gen != s.gen) {
			return
		}
		f()
		s.notify()
	})
	s.timers = append(s.timers, t)
}

// flashSteps is how many progress updates a flash makes.
const flashSteps = 20

// startFlash begins flashing img. The caller holds s.mu.
func (s *Sim) startFlash(img Image) {
	s.gen++
	gen := s.gen
	s.st.Upgrading = true
	s.st.Percent = 0
	s.st.Pending = nil
	log := s.cfg.Logger.WithFields(map[string]any{"image_model": img.Model, "image_version": img.Version, "image_variant": img.Variant, "sha256": img.SHA256})
	log.Info("flashing started")
	if lose := s.faults.LoseFlashAt; lose > 0 && lose < 100 && s.cfg.FlashDuration <= 0 {
		s.powerCut()
		return
	}
	if s.cfg.FlashDuration <= 0 {
		s.finishFlash(img)
		return
	}
	step := s.cfg.FlashDuration / flashSteps
	for i := 1; i < flashSteps; i++ {
		pct := i * 100 / flashSteps
		s.after(time.Duration(i)*step, gen, func() {
			// Timers may fire out of order under load: never step back,
			// never touch a finished flash.
			if s.st.Upgrading && pct > s.st.Percent {
				s.st.Percent = pct
			}
			if lose := s.faults.LoseFlashAt; s.st.Upgrading && lose > 0 && pct >= lose {
				s.powerCut()
			}
		})
	}
	s.after(s.cfg.FlashDuration, gen, func() { s.finishFlash(img) })
}

// finishFlash ends a flash: the image is written and becomes active after
// the next reboot, unless it damaged the recorder. The caller holds s.mu.
func (s *Sim) finishFlash(img Image) {
	s.st.Upgrading = false
	s.st.Percent = 100
	s.st.Installs++
	if isProtected(s.st.Model) && !survives(img) {
		s.st.Bricked = true
		s.st.BrickReason = "flashed " + img.Variant + " firmware " + img.Version + " onto " + s.st.Model +
			", which only survives custom firmware " + ProtectedVersion
		s.cfg.Logger.WithField("reason", s.st.BrickReason).Error("recorder damaged permanently: it will never answer again")
		return
	}
	p := img
	s.st.Pending = &p
	s.cfg.Logger.WithField("version", img.Version).Info("flashing finished: reboot to activate")
}

// PowerCut makes the recorder lose power and come back at once: a flash in
// progress and a flashed image waiting for a reboot are lost; it runs its
// old firmware, not upgrading, at 0%.
func (s *Sim) PowerCut() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.powerCut()
	s.notify()
}

// powerCut is PowerCut with s.mu held.
func (s *Sim) powerCut() {
	s.gen++ // the flash's and a reboot's timers no longer apply
	s.st.Upgrading, s.st.Percent, s.st.Pending, s.st.Rebooting = false, 0, nil, false
	s.cfg.Logger.Warn("fault: the recorder lost power; it is back on its old firmware, not upgrading, at 0%")
}

// startReboot takes the recorder down. The caller holds s.mu.
func (s *Sim) startReboot() {
	s.gen++
	gen := s.gen
	s.st.Rebooting = true
	s.st.Reboots++
	for i := range s.st.Channels {
		s.st.Channels[i].Online = false
	}
	s.cfg.Logger.WithField("delay", s.cfg.RebootDelay).Info("rebooting")
	if s.faults.NeverReturnFromReboot {
		s.cfg.Logger.Warn("fault: the recorder will never come back from this reboot")
		return
	}
	if s.cfg.RebootDelay <= 0 {
		s.finishReboot()
		return
	}
	s.after(s.cfg.RebootDelay, gen, s.finishReboot)
}

// finishReboot brings the recorder back, running the flashed image unless
// ReturnOnOldFirmware is set. The caller holds s.mu.
func (s *Sim) finishReboot() {
	s.st.Rebooting = false
	s.st.Percent = 0
	flashed := false
	if p := s.st.Pending; p != nil {
		if s.faults.ReturnOnOldFirmware {
			s.cfg.Logger.Warn("fault: came back on the old firmware")
		} else {
			flashed = true
			s.st.Firmware = firmwareString(p.Version)
			if p.Build != "" {
				s.st.Build = buildString(p.Build)
			}
			s.st.Variant = p.Variant
		}
	}
	s.st.Pending = nil
	if flashed {
		s.afterFlash()
	}
	s.cfg.Logger.WithField("firmware", s.st.Firmware).Info("back from reboot")
	back := func() {
		for i := range s.st.Channels {
			s.st.Channels[i].Online = !s.st.Channels[i].Lost
		}
		s.cfg.Logger.Info("camera channels back online")
	}
	if s.cfg.ChannelReturnDelay <= 0 {
		back()
		return
	}
	s.after(s.cfg.ChannelReturnDelay, s.gen, back)
}

// afterFlash applies the faults that strike a recorder coming back from a
// reboot into a flashed image: disks that changed state, channels that
// never come back. The caller holds s.mu.
func (s *Sim) afterFlash() {
	for i := range s.st.Disks {
		if v, ok := s.faults.DiskStatusAfterFlash[strconv.Itoa(s.st.Disks[i].ID)]; ok {
			s.cfg.Logger.WithFields(map[string]any{"disk": s.st.Disks[i].ID, "status": v}).Warn("fault: disk changed state after the flash")
			s.st.Disks[i].Status = v
		}
	}
	lose := min(s.faults.ChannelsLostAfterFlash, len(s.st.Channels))
	for i := len(s.st.Channels) - lose; i < len(s.st.Channels); i++ {
		if !s.st.Channels[i].Lost {
			s.cfg.Logger.WithField("channel", s.st.Channels[i].ID).Warn("fault: channel will never come back online")
		}
		s.st.Channels[i].Lost = true
	}
}

// configBlob makes the opaque configuration file of a recorder: a marker
// naming the serial (tests look for it where it must never be) and
// pseudo-random bytes standing in for the vendor's encryption.
func configBlob(serial string, size int) []byte {
	b := make([]byte, 0, size+64)
	b = append(b, ConfigMarker+serial+"\n"...)
	seed := sha256.Sum256([]byte("nvrsim config " + serial))
	for len(b) < size {
		seed = sha256.Sum256(seed[:])
		b = append(b, seed[:]...)
	}
	return b[:max(size, len(ConfigMarker)+len(serial)+1)]
}

// ConfigMarker starts every simulated configuration file, followed by the
// serial. It stands for the credentials a real file holds: tests check it
// never reaches a log, a report or a support bundle.
const ConfigMarker = "NVRSIM-CONFIG-WITH-CREDENTIALS serial="

// ConfigFile returns a copy of the configuration file the recorder exports.
func (s *Sim) ConfigFile() []byte { return append([]byte(nil), s.blob...) }

// loginFailed counts a failed login and locks the account once LockAfter
// failures happened in a row. The caller holds s.mu.
func (s *Sim) loginFailed(why string) {
	s.st.FailedLogins++
	s.st.TotalFailedLogins++
	log := s.cfg.Logger.WithFields(map[string]any{"why": why, "failed_logins": s.st.FailedLogins})
	if s.st.FailedLogins >= s.cfg.LockAfter {
		until := s.now().Add(s.cfg.LockFor)
		s.lockedUntil = until
		s.after(s.cfg.LockFor, -1, func() {
			if s.lockedUntil.Equal(until) {
				s.unlock()
			}
		})
		log.Warn("failed login: account locked")
		return
	}
	log.Warn("failed login")
}

// unlock ends a lock. The caller holds s.mu.
func (s *Sim) unlock() {
	s.lockedUntil = time.Time{}
	s.st.FailedLogins = 0
	s.cfg.Logger.Info("account unlocked")
}
