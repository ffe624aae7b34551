package brick_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/secure-systems-lab/go-securesystemslib/dsse"
	"github.com/sirupsen/logrus"

	"github.com/fwagent/fwagent/agent"
	"github.com/fwagent/fwagent/device/isapi"
	"github.com/fwagent/fwagent/internal/lab"
	"github.com/fwagent/fwagent/internal/nvrsim"
	"github.com/fwagent/fwagent/internal/testimage"
	"github.com/fwagent/fwagent/manifest"
	"github.com/fwagent/fwagent/verify"
)

// Environment knobs of the invariant.
const (
	envSeed = "FWAGENT_BRICK_SEED" // the seed (default: from the clock, printed)
	envN    = "FWAGENT_BRICK_N"    // number of scenarios (default defaultN)
	envOnly = "FWAGENT_BRICK_ONLY" // run only this scenario index, with its log
)

const defaultN = 1000

// Pools the scenarios draw from.
var (
	protectedSpellings = []string{"iDS-9632NXI-I8/16S", "ids-9632nxi-i8/16s", "IDS-9632NXI-I8/16S", " iDS-9632NXI-I8/16S ", "iDS-9632NXI-I8/16s"}
	lookAlikes         = []string{"iDS-9632NXI-I8/S", "iDS-9632NXI-I8/16S-X", "iDS-9632NXI-I8/X", "iDS-9632NXI-I8/X-AI", "iDS-9632NXI-I8/S(C)", "iDS-9632NXI-I8/16", "iDS-9632NXI-I8"}
	otherModels        = []string{"DS-7608NI-K2", "DS-9632NI-I8", "DS-7732NI-I4/16P"}
	installedVersions  = []string{"V4.1.20", "V4.1.24", "V4.1.25", "V4.1.26", "V4.1.30", "V3.4.92", "V5.0.0"}
	releaseVersions    = []string{"4.1.25", "4.1.25", "V4.1.25", "4.1.24", "4.1.26", "4.1.30", "5.0.1", "5.2.0", "4.1.20"}
	variants           = []string{"custom", "custom", "standard", "standard"}
	manifestFaults     = []string{"bad_signature", "unknown_key", "expired", "issued_in_future", "tampered_payload"}
	// trapVersions are what a careless integrator may declare for the
	// standard image: the exact version and spellings the rule refuses.
	trapVersions = []string{"4.1.25", "V4.1.25", "4.1.25.0", "04.01.25", " 4.1.25", "4.1.25 ", "4.1.25 build 200316"}
	trapSigning  = []string{"one key", "two keys, one signs", "one key signs twice", "one key and a wrong pin"}
)

// scenario is one randomly drawn world.
type scenario struct {
	Index                    int
	Model, Firmware, Variant string
	Releases                 []lab.Release
	ManifestFault            string
	AllowDowngrade           bool
	PinHonest, PinUnknown    bool // pin the honest releases' digests / a digest no image has
	Busy                     int
	DropUploadAfter          int64
	// Keys is how many keys the config trusts and sign (0: the lab's two).
	Keys int
	// SignWithFirst publishes the manifest signed by the first key only;
	// DupSignature lists the first key's signature twice.
	SignWithFirst, DupSignature bool
	// Trap is issue 14's attack: the only release declares custom for the
	// protected model, but its image is the standard firmware, published
	// with its true size and digest. TrapSigning names how it is signed.
	Trap        bool
	TrapSigning string
}

// signers is how many distinct trusted keys sign the scenario's manifest.
func (s scenario) signers() int {
	switch {
	case s.Keys == 1, s.SignWithFirst:
		return 1
	}
	return 2
}

func (s scenario) String() string {
	var rels []string
	for _, r := range s.Releases {
		d := fmt.Sprintf("%s{%s %s %q", r.ID, r.Variant, r.Version, r.Models)
		if r.ImageModel != "" || r.ImageVersion != "" || r.ImageVariant != "" {
			d += fmt.Sprintf(" image-claims(model=%q version=%q variant=%q)", r.ImageModel, r.ImageVersion, r.ImageVariant)
		}
		if r.Corrupt != testimage.None {
			d += " corrupt=" + r.Corrupt.String()
		}
		if r.WrongDigest {
			d += " wrong-digest"
		}
		if r.WrongSize {
			d += " wrong-size"
		}
		rels = append(rels, d+"}")
	}
	return fmt.Sprintf("scenario %d: device %q %s %s; releases %s; manifest fault %q; allow_downgrade=%v pin_honest=%v pin_unknown=%v busy=%d drop_upload_after=%d; keys=%d sign_with_first=%v dup_signature=%v trap=%v (%s)",
		s.Index, s.Model, s.Firmware, s.Variant, strings.Join(rels, ", "), s.ManifestFault, s.AllowDowngrade, s.PinHonest, s.PinUnknown, s.Busy, s.DropUploadAfter,
		s.Keys, s.SignWithFirst, s.DupSignature, s.Trap, s.TrapSigning)
}

// honest reports whether r's image is what r claims and is intact.
func honest(r lab.Release) bool {
	return r.ImageModel == "" && r.ImageVersion == "" && r.ImageVariant == "" && r.Corrupt == testimage.None && !r.WrongDigest && !r.WrongSize
}

// lies reports whether r's image claims another identity than r.
func lies(r lab.Release) bool {
	return r.ImageModel != "" || r.ImageVersion != "" || r.ImageVariant != ""
}

// simProtected is the simulator's own judgement of the protected model.
func simProtected(model string) bool {
	return strings.EqualFold(strings.TrimSpace(model), nvrsim.ProtectedModel)
}

func pick[T any](r *rand.Rand, s []T) T { return s[r.IntN(len(s))] }

// draw builds scenario i of a run with the given seed. Each scenario has its
// own generator so that one can be replayed alone (FWAGENT_BRICK_ONLY).
func draw(seed uint64, i int) scenario {
	r := rand.New(rand.NewPCG(seed, uint64(i)))
	s := scenario{Index: i}
	switch p := r.IntN(10); {
	case p < 4:
		s.Model = pick(r, protectedSpellings)
	case p < 8:
		s.Model = pick(r, lookAlikes)
	default:
		s.Model = pick(r, otherModels)
	}
	s.Firmware = pick(r, installedVersions)
	s.Variant = pick(r, variants)

	n := 1 + r.IntN(4)
	for j := 0; j < n; j++ {
		rel := lab.Release{
			ID:      fmt.Sprintf("r%d", j),
			Version: pick(r, releaseVersions),
			Variant: pick(r, variants),
			Size:    int64(2048 + r.IntN(4096)),
		}
		// Models: usually the device's own model (in some spelling), often
		// with neighbours; sometimes only neighbours.
		var models []string
		add := func(m string) {
			m = strings.TrimSpace(m) // the manifest refuses padded models
			for _, have := range models {
				if verify.SameModel(have, m) {
					return
				}
			}
			models = append(models, m)
		}
		if r.IntN(10) < 7 {
			if simProtected(s.Model) {
				add(pick(r, protectedSpellings))
			} else {
				add(s.Model)
			}
		}
		for k := r.IntN(3); k > 0; k-- {
			switch r.IntN(3) {
			case 0:
				add(pick(r, protectedSpellings))
			case 1:
				add(pick(r, lookAlikes))
			default:
				add(pick(r, otherModels))
			}
		}
		if len(models) == 0 {
			add(pick(r, lookAlikes))
		}
		rel.Models = models
		// The image: lying about what it is, corrupted, or published with
		// the wrong digest or size.
		switch p := r.IntN(20); {
		case p < 2:
			rel.ImageVariant = pick(r, []string{"standard", "custom"})
			rel.ImageVersion = pick(r, releaseVersions)
		case p < 3:
			rel.ImageModel = pick(r, append(append([]string{}, lookAlikes...), protectedSpellings[0], otherModels[0]))
		case p < 5:
			rel.Corrupt = pick(r, testimage.Corruptions())
		case p < 6:
			rel.WrongDigest = true
		case p < 7:
			rel.WrongSize = true
		}
		s.Releases = append(s.Releases, rel)
	}
	if r.IntN(8) == 0 {
		s.ManifestFault = pick(r, manifestFaults)
	}
	s.AllowDowngrade = r.IntN(4) == 0
	switch p := r.IntN(10); {
	case p == 0:
		s.PinHonest = true
	case p == 1:
		s.PinUnknown = true
	}
	// A signer who signs an image that lies about its variant or version
	// is beyond what the agent can see: nothing in a real digicap.dav tells
	// custom from standard firmware. The operator's defence is pinning the
	// digests it vetted, so a protected recorder offered a lying image gets
	// the pins of the honest images.
	if simProtected(s.Model) {
		for _, rel := range s.Releases {
			if lies(rel) {
				s.PinHonest, s.PinUnknown = true, false
			}
		}
	}
	switch p := r.IntN(10); {
	case p == 0:
		s.Busy = 1 + r.IntN(3)
	case p == 1:
		s.DropUploadAfter = pick(r, []int64{64, 1024, 1 << 40})
	}
	// Sometimes one key alone signs: the protected model then needs a pin.
	switch p := r.IntN(8); {
	case p == 0:
		s.Keys = 1
	case p == 1:
		s.SignWithFirst = true
	}
	if simProtected(s.Model) && r.IntN(5) == 0 {
		drawTrap(r, &s)
	}
	return s
}

// drawTrap turns s into issue 14's attack and its variants: the signed
// standard image declared custom (in some spelling of 4.1.25) with one
// proof only. They must all be refused before the download.
func drawTrap(r *rand.Rand, s *scenario) {
	s.Trap = true
	s.ManifestFault = ""
	s.PinHonest, s.PinUnknown = false, false
	s.Keys, s.SignWithFirst, s.DupSignature = 0, false, false
	s.Releases = []lab.Release{{
		ID:           "trap",
		Models:       []string{strings.TrimSpace(pick(r, protectedSpellings))},
		Version:      pick(r, trapVersions),
		Variant:      "custom",
		Size:         int64(2048 + r.IntN(4096)),
		ImageVariant: "standard",
		ImageVersion: pick(r, []string{"4.1.30", "4.1.25", "4.1.64"}),
	}}
	s.TrapSigning = pick(r, trapSigning)
	switch s.TrapSigning {
	case "one key":
		s.Keys = 1
	case "two keys, one signs":
		s.SignWithFirst = true
	case "one key signs twice":
		s.Keys, s.DupSignature = 1, true
	case "one key and a wrong pin":
		s.Keys, s.PinUnknown = 1, true
	}
}

// result is what one scenario produced.
type result struct {
	out        agent.Outcome
	st         nvrsim.State
	pub        *manifest.Manifest
	imageBytes int64 // image bytes the update server served
	setup      time.Duration
	cycle      time.Duration
}

// run starts a lab for s, runs one update cycle and returns what happened.
func run(dir string, s scenario, log logrus.FieldLogger) (*result, error) {
	t0 := time.Now()
	opts := lab.Options{
		Dir: dir,
		Device: nvrsim.Config{
			Model:       s.Model,
			Firmware:    s.Firmware,
			Variant:     s.Variant,
			RebootDelay: 10 * time.Millisecond,
		},
		Releases: s.Releases,
		Keys:     s.Keys,
	}
	switch s.ManifestFault {
	case "expired":
		opts.Now = func() time.Time { return time.Now().Add(-72 * time.Hour) }
		opts.Valid = time.Hour
	case "issued_in_future":
		opts.Now = func() time.Time { return time.Now().Add(72 * time.Hour) }
	}
	l, err := lab.Start(opts)
	if err != nil {
		return nil, err
	}
	defer l.Close()
	pub := l.Manifest()
	if err := signing(l, s); err != nil {
		return nil, err
	}
	if err := forge(l, s.ManifestFault); err != nil {
		return nil, err
	}
	cfg, err := l.Config()
	if err != nil {
		return nil, err
	}
	cfg.Policy.AllowDowngrade = s.AllowDowngrade
	switch {
	case s.PinHonest:
		var pins []string
		for i, rel := range s.Releases {
			if honest(rel) {
				pins = append(pins, pub.Releases[i].Image.SHA256)
			}
		}
		cfg.Policy.Pins = map[string][]string{strings.TrimSpace(s.Model): pins}
	case s.PinUnknown:
		cfg.Policy.Pins = map[string][]string{strings.TrimSpace(s.Model): {strings.Repeat("ab", 32)}}
	}
	c := cfg.Device.ISAPI
	dev, err := isapi.New(isapi.Config{
		BaseURL:        c.URL,
		Username:       c.Username,
		Password:       c.Password,
		RequestTimeout: 10 * time.Second,
		UploadTimeout:  time.Minute,
		FlashTimeout:   time.Minute,
		RebootTimeout:  time.Minute,
		DownGrace:      50 * time.Millisecond,
		PollInterval:   2 * time.Millisecond,
		RetryMax:       3,
		RetryWaitMin:   time.Millisecond,
		RetryWaitMax:   5 * time.Millisecond,
		Logger:         log,
	})
	if err != nil {
		return nil, err
	}
	a, err := agent.New(cfg, agent.Options{Version: "brick", Log: log, Device: dev})
	if err != nil {
		return nil, err
	}
	defer a.Close()
	l.Sim.SetFaults(nvrsim.Faults{BusyFor: s.Busy, DropUploadAfter: s.DropUploadAfter})
	t1 := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out := a.Cycle(ctx, agent.ModeUpdateNow)
	return &result{out: out, st: l.Sim.State(), pub: pub, imageBytes: l.ImageBytes.Load(), setup: t1.Sub(t0), cycle: time.Since(t1)}, nil
}

// signing republishes the lab's manifest signed by the first key only, or
// with its signature listed twice.
func signing(l *lab.Lab, s scenario) error {
	if !s.SignWithFirst && !s.DupSignature {
		return nil
	}
	m := l.Manifest()
	if err := l.PublishSigned(m, l.Key); err != nil || !s.DupSignature {
		return err
	}
	var e dsse.Envelope
	if err := json.Unmarshal(l.Envelope(), &e); err != nil {
		return err
	}
	e.Signatures = append(e.Signatures, e.Signatures[0])
	env, err := json.Marshal(e)
	if err != nil {
		return err
	}
	return l.PublishEnvelope(m, env)
}

// forge replaces the lab's manifest with a forged or broken envelope.
func forge(l *lab.Lab, fault string) error {
	if fault == "" || fault == "expired" || fault == "issued_in_future" {
		return nil
	}
	m := l.Manifest()
	payload, err := m.Marshal(manifest.ParseOptions{})
	if err != nil {
		return err
	}
	var env []byte
	switch fault {
	case "unknown_key":
		_, other, err := manifest.GenerateKey()
		if err != nil {
			return err
		}
		if env, err = manifest.Sign(payload, other); err != nil {
			return err
		}
	case "bad_signature", "tampered_payload":
		signed, err := manifest.Sign(payload, l.Key)
		if err != nil {
			return err
		}
		var e dsse.Envelope
		if err := json.Unmarshal(signed, &e); err != nil {
			return err
		}
		if fault == "bad_signature" {
			sig, err := base64.StdEncoding.DecodeString(e.Signatures[0].Sig)
			if err != nil {
				return err
			}
			sig[len(sig)/2] ^= 0x01
			e.Signatures[0].Sig = base64.StdEncoding.EncodeToString(sig)
		} else {
			// Every release becomes custom 4.1.25 for the protected model:
			// the attack the signature exists to stop.
			// The trailing space alone breaks the signature when there
			// is nothing to rewrite.
			tampered := strings.ReplaceAll(string(payload), `"standard"`, `"custom"`) + " "
			e.Payload = base64.StdEncoding.EncodeToString([]byte(tampered))
		}
		if env, err = json.Marshal(e); err != nil {
			return err
		}
	default:
		return fmt.Errorf("unknown manifest fault %q", fault)
	}
	return l.PublishEnvelope(m, env)
}

// check asserts the invariant on one scenario's result and returns every
// violation.
func check(s scenario, res *result) []string {
	var bad []string
	out, st := res.out, res.st
	if st.Bricked {
		bad = append(bad, "the recorder was BRICKED: "+st.BrickReason)
	}
	// Every flash the simulator saw obeys the vendor rule.
	if st.Installs > 0 {
		img := st.LastUpload.Image
		switch {
		case img == nil:
			bad = append(bad, "the simulator flashed an image it could not identify")
		case simProtected(s.Model) && (!strings.EqualFold(img.Variant, "custom") || !exactProtected(img.Version)):
			bad = append(bad, fmt.Sprintf("the protected model was flashed with %s %s", img.Variant, img.Version))
		}
		if st.Installs > 1 {
			bad = append(bad, fmt.Sprintf("flashed %d times in one cycle", st.Installs))
		}
		// Only an intact image with the published digest may reach the device.
		idx := -1
		for i, rel := range res.pub.Releases {
			if rel.Image.SHA256 == st.LastUploadSHA256 {
				idx = i
			}
		}
		switch {
		case idx < 0:
			bad = append(bad, "the uploaded image matches no published digest")
		case s.Releases[idx].Corrupt != testimage.None || s.Releases[idx].WrongDigest || s.Releases[idx].WrongSize:
			bad = append(bad, fmt.Sprintf("release %s with a bad image was flashed", s.Releases[idx].ID))
		case s.ManifestFault != "":
			bad = append(bad, "an image was flashed from a manifest with fault "+s.ManifestFault)
		}
	}
	if s.ManifestFault != "" && st.Uploads > 0 {
		bad = append(bad, "an image was uploaded from a manifest with fault "+s.ManifestFault)
	}
	// In these worlds a recorder stops answering only when damaged: the
	// safety code is never a false alarm.
	if slices.Contains(out.Codes, agent.CodeProtectedUnresponsive) && !st.Bricked {
		bad = append(bad, "protected_model_unresponsive reported, but the recorder answers")
	}
	// The trap and its variants never get past the decision: nothing is
	// downloaded, the recorder sees no upload.
	if s.Trap {
		if res.imageBytes != 0 || st.Uploads != 0 || st.Installs != 0 || st.LastUpload != nil {
			bad = append(bad, fmt.Sprintf("the trap (%s) was not refused before the download: %d image bytes served, %d uploads", s.TrapSigning, res.imageBytes, st.Uploads))
		}
		if out.Result != agent.ResultRefused || !slices.ContainsFunc(out.Codes, func(c string) bool {
			return c == string(verify.CodeProtectedNeedsSecondProof) || c == string(verify.CodeCustomVersionForbidden) || c == string(verify.CodeDigestNotPinned)
		}) {
			bad = append(bad, fmt.Sprintf("the trap (%s) ended %s %v, not refused by the second-proof, version or pin rule", s.TrapSigning, out.Result, out.Codes))
		}
	}
	if out.Result == agent.ResultInstalled {
		var chosen *agent.Candidate
		for i := range out.Candidates {
			if out.Candidates[i].Chosen {
				chosen = &out.Candidates[i]
			}
		}
		switch {
		case chosen == nil:
			bad = append(bad, "installed, but no candidate is marked chosen")
		case simProtected(s.Model) && (chosen.Release.Variant != "custom" || !exactProtected(chosen.Release.Version)):
			bad = append(bad, fmt.Sprintf("installed release %s (%s %s) on the protected model", chosen.Release.ID, chosen.Release.Variant, chosen.Release.Version))
		case simProtected(s.Model) && s.signers() < 2 && !s.PinHonest:
			bad = append(bad, fmt.Sprintf("installed release %s on the protected model with %d signer(s) and no pin: no second proof", chosen.Release.ID, s.signers()))
		case !sameVersion(st.Firmware, chosen.Release.Version):
			bad = append(bad, fmt.Sprintf("reported installed, but the recorder runs %s, not %s", st.Firmware, chosen.Release.Version))
		}
		if st.Installs != 1 {
			bad = append(bad, fmt.Sprintf("reported installed, but the simulator flashed %d images", st.Installs))
		}
		return bad
	}
	// Not installed: the outcome always says why with a code (even "no
	// release names this model" has one).
	if len(out.Codes) == 0 {
		return append(bad, fmt.Sprintf("not installed (%s: %s) and no reason code given", out.Result, out.Message))
	}
	if slices.Contains(out.Codes, agent.CodeNoRelease) && namesModel(s.Releases, s.Model) && s.ManifestFault == "" {
		bad = append(bad, "the outcome says no release names the model, but one does")
	}
	return bad
}

func namesModel(rels []lab.Release, model string) bool {
	for _, r := range rels {
		for _, m := range r.Models {
			if verify.SameModel(m, model) {
				return true
			}
		}
	}
	return false
}

// exactProtected is the simulator's own reading of the protected version:
// 4.1.25 with an optional leading V, nothing else.
func exactProtected(v string) bool {
	if v != "" && (v[0] == 'V' || v[0] == 'v') {
		v = v[1:]
	}
	return v == nvrsim.ProtectedVersion
}

func sameVersion(a, b string) bool {
	va, err1 := verify.ParseVersion(a)
	vb, err2 := verify.ParseVersion(b)
	return err1 == nil && err2 == nil && va.Compare(vb) == 0
}

// settings reads the seed, the scenario count and the replay index.
func settings(t *testing.T) (seed uint64, n, only int) {
	t.Helper()
	seed = uint64(time.Now().UnixNano())
	if v := os.Getenv(envSeed); v != "" {
		s, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("%s=%q: want an unsigned integer", envSeed, v)
		}
		seed = s
	}
	n, only = defaultN, -1
	if testing.Short() {
		n = 200
	}
	if v := os.Getenv(envN); v != "" {
		i, err := strconv.Atoi(v)
		if err != nil || i < 1 {
			t.Fatalf("%s=%q: want a positive integer", envN, v)
		}
		n = i
	}
	if v := os.Getenv(envOnly); v != "" {
		i, err := strconv.Atoi(v)
		if err != nil || i < 0 {
			t.Fatalf("%s=%q: want a scenario index", envOnly, v)
		}
		only = i
	}
	return seed, n, only
}

func TestNoScenarioBricksTheRecorder(t *testing.T) {
	seed, n, only := settings(t)
	t.Logf("brick invariant: seed %d, %d scenarios (replay with %s=%d %s=%d, one scenario with %s=INDEX)", seed, n, envSeed, seed, envN, n, envOnly)

	indexes := make(chan int)
	go func() {
		defer close(indexes)
		if only >= 0 {
			indexes <- only
			return
		}
		for i := 0; i < n; i++ {
			indexes <- i
		}
	}()

	var (
		mu                                           sync.Mutex
		results                                      = map[agent.Result]int{}
		codes                                        = map[string]int{}
		byResult                                     = map[agent.Result]time.Duration{}
		failures                                     int
		setup, cycle                                 time.Duration
		installs, protectedInstalls, protectedOffers atomic.Int64
		traps                                        atomic.Int64
	)
	base := t.TempDir()
	workers := 4 * runtime.GOMAXPROCS(0)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range indexes {
				mu.Lock()
				stop := failures > 20
				mu.Unlock()
				if stop {
					continue // drain: enough failures to read
				}
				s := draw(seed, i)
				// A logger of its own per scenario: each agent adds its
				// hooks to the logger it is given, and a shared one would
				// collect a hook per scenario.
				quiet := logrus.New()
				quiet.Out = io.Discard
				log := logrus.FieldLogger(quiet)
				if only >= 0 {
					l := logrus.New()
					l.Out = os.Stderr
					l.Level = logrus.DebugLevel
					l.Formatter = &logrus.TextFormatter{FullTimestamp: true, TimestampFormat: "15:04:05.000"}
					log = l
					t.Log(s)
				}
				dir := filepath.Join(base, strconv.Itoa(i))
				res, err := run(dir, s, log)
				_ = os.RemoveAll(dir)
				mu.Lock()
				if err != nil {
					failures++
					t.Errorf("%v\n  setup failed: %v", s, err)
					mu.Unlock()
					continue
				}
				results[res.out.Result]++
				byResult[res.out.Result] += res.cycle
				for _, c := range res.out.Codes {
					codes[c]++
				}
				setup += res.setup
				cycle += res.cycle
				if bad := check(s, res); len(bad) > 0 {
					failures++
					t.Errorf("%v\n  outcome %s %v: %s\n  VIOLATES: %s\n  replay: %s=%d %s=%d", s, res.out.Result, res.out.Codes, res.out.Message, strings.Join(bad, "; "), envSeed, seed, envOnly, i)
				}
				if only >= 0 {
					t.Logf("outcome %s %v: %s; simulator %+v", res.out.Result, res.out.Codes, res.out.Message, res.st)
				}
				mu.Unlock()
				if res.st.Installs > 0 {
					installs.Add(1)
					if simProtected(s.Model) {
						protectedInstalls.Add(1)
					}
				}
				if simProtected(s.Model) {
					protectedOffers.Add(1)
				}
				if s.Trap {
					traps.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	t.Logf("results: %v; flashes: %d; scenarios on the protected model: %d, of which flashed (custom 4.1.25): %d", results, installs.Load(), protectedOffers.Load(), protectedInstalls.Load())
	t.Logf("signed standard images declared custom (the trap, issue 14): %d, each refused before the download", traps.Load())
	t.Logf("codes: %v", codes)
	t.Logf("cycle time by result: %v", byResult)
	t.Logf("time summed over scenarios: setup %v, cycle %v", setup.Round(time.Millisecond), cycle.Round(time.Millisecond))
	if failures > 0 {
		t.Errorf("%d scenarios violate the invariant (seed %d)", failures, seed)
	}
}
