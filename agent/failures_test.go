package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"testing"

	"github.com/sirupsen/logrus"

	"github.com/fwagent/fwagent/agent/backend"
	"github.com/fwagent/fwagent/agent/fetch"
	"github.com/fwagent/fwagent/agent/journal"
	"github.com/fwagent/fwagent/device"
	"github.com/fwagent/fwagent/internal/lab"
	"github.com/fwagent/fwagent/internal/nvrsim"
	"github.com/fwagent/fwagent/manifest"
	"github.com/fwagent/fwagent/verify"
)

var errHalt = errors.New("halted by the test")

// tableAgent is an agent on a lab whose one release, custom 4.1.25, is
// allowed for the simulated protected recorder.
func tableAgent(t *testing.T) (*Agent, *lab.Lab) {
	t.Helper()
	l, err := lab.Start(lab.Options{
		Dir:      t.TempDir(),
		Releases: []lab.Release{{ID: "custom-4.1.25", Version: "4.1.25", Variant: "custom"}},
		Device:   nvrsim.Config{Model: "iDS-9632NXI-I8/16S", Firmware: "V4.1.20"},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.Close)
	cfg, err := l.Config()
	if err != nil {
		t.Fatal(err)
	}
	log := logrus.New()
	log.Out = io.Discard
	a, err := New(cfg, Options{Backend: backend.New, Version: "test", Log: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Close() })
	return a, l
}

// TestEveryStepWalksItsFailureTable drives each class of failure each step
// declares through the real runner, at that step, with an update in
// progress, and checks the journal ends as the table says.
func TestEveryStepWalksItsFailureTable(t *testing.T) {
	for _, s := range allStates() {
		for _, cls := range classes() {
			act, ok := s.failures[cls]
			if !ok {
				continue
			}
			t.Run(fmt.Sprintf("%s/%s does %s", s.name, cls, act), func(t *testing.T) {
				a, _ := tableAgent(t)
				ctx := context.Background()
				// Steps that run before the update exists, and settle, meet
				// an update already in progress.
				switch s {
				case stateIdentify, stateFetch, stateDecide:
					haltAt(t, a, journal.StepVerify)
				case stateSettle:
					haltAt(t, a, journal.StepReboot)
				}
				var at journal.Step
				run := s.run
				t.Cleanup(func() { s.run = run })
				s.run = func(c *cycle, _ context.Context) (*state, error) {
					if u := c.current(); u != nil {
						at = u.Step
					}
					return nil, failed(cls, "injected_"+cls.String(), errors.New("injected by the test"))
				}
				out := a.Cycle(ctx, ModeUpdateNow)
				if out.Result != ResultFailed || !slices.Contains(out.Codes, "injected_"+cls.String()) {
					t.Fatalf("%s %v (%s), want failed with the injected code", out.Result, out.Codes, out.Message)
				}
				if out.Transient == cls.fatalByDefault() {
					t.Errorf("transient = %v for class %s", out.Transient, cls)
				}
				if out.InstallFailed != s.sent {
					t.Errorf("install failed %v, want %v", out.InstallFailed, s.sent)
				}
				js := a.Journal.State()
				const rel = "custom-4.1.25"
				switch act {
				case nextCycle:
					// The install step sent nothing yet: its update goes back
					// to wait_window, so the next cycle proves the image again
					// instead of settling an upload that never happened.
					want := at
					if s == stateInstall {
						want = journal.StepWaitWindow
					}
					if js.Current == nil || js.Current.Step != want || len(js.Quarantine) != 0 || js.Attempts[rel] != 0 {
						t.Fatalf("current %+v, quarantine %v, attempts %v; want the update kept at %s", js.Current, js.Quarantine, js.Attempts, want)
					}
				case newAttempt:
					if js.Current != nil || len(js.Quarantine) != 0 || js.Attempts[rel] != 1 {
						t.Fatalf("current %+v, quarantine %v, attempts %v; want the attempt ended and counted, no quarantine", js.Current, js.Quarantine, js.Attempts)
					}
				case quarantine:
					if js.Current != nil || !js.Quarantined(rel, js.LastSerial) {
						t.Fatalf("current %+v, quarantine %v; want the release quarantined", js.Current, js.Quarantine)
					}
				}
			})
		}
	}
}

// haltAt runs a cycle that stops, as a crash would, when step is recorded.
func haltAt(t *testing.T, a *Agent, step journal.Step) {
	t.Helper()
	a.beforeStep = func(s journal.Step) error {
		if s == step {
			return errHalt
		}
		return nil
	}
	out := a.Cycle(context.Background(), ModeUpdateNow)
	a.beforeStep = nil
	if out.Result != ResultStopped {
		t.Fatalf("%s %v (%s), want stopped at %s", out.Result, out.Codes, out.Message, step)
	}
}

// TestFailuresAreClassifiedByTheirTypedError checks the class each
// package's typed error gets.
func TestFailuresAreClassifiedByTheirTypedError(t *testing.T) {
	cases := []struct {
		name string
		err  error
		want class
	}{
		{"an unreachable device is unavailable", fmt.Errorf("x: %w", device.ErrUnreachable), classUnavailable},
		{"a busy device is unavailable", &device.Error{Op: "install", Code: "deviceBusy", Transient: true, Err: errors.New("busy")}, classUnavailable},
		{"refused credentials are the device's", &device.Error{Op: "identify", Code: "badCredentials", Err: device.ErrBadCredentials}, classDevice},
		{"a flash the device stopped before 100% is interrupted", &device.Error{Op: "install", Code: "flashInterrupted", Transient: true, Err: device.ErrFlashInterrupted}, classInterrupted},
		{"a refused manifest is the manifest's", &manifest.Error{Code: manifest.CodeExpired, Msg: "expired"}, classManifest},
		{"a policy refusal is refused", &refusal{decision: verify.Decision{Reasons: []verify.Reason{{Code: verify.CodeModelMismatch}}}, what: "test"}, classRefused},
		{"a lying Content-Range is a server's fault", &fetch.Error{Code: fetch.CodeBadContentRange}, classServer},
		{"a 404 is a server's fault", &fetch.Error{Code: fetch.CodeStatus, Status: 404}, classServer},
		{"a 503 is unavailable", &fetch.Error{Code: fetch.CodeStatus, Status: 503, Transient: true}, classUnavailable},
		{"one mirror's wrong digest is a server's fault", &fetch.Error{Code: fetch.CodeDigestMismatch}, classServer},
		{"a wrong digest from every mirror is image evidence", &fetch.Error{Code: fetch.CodeDigestMismatch, ImageEvidence: true}, classImage},
		{"a full disk is local", &fetch.Error{Code: fetch.CodeNoSpace, Transient: true}, classLocal},
		{"an unknown error is local", errors.New("boom"), classLocal},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := classify(tc.err).class; got != tc.want {
				t.Fatalf("class %s, want %s", got, tc.want)
			}
		})
	}
}

// TestEveryClassIsDocumented keeps the docs' tables complete.
func TestEveryClassIsDocumented(t *testing.T) {
	for _, c := range classes() {
		if classNames[c] == "" || classDocs[c] == "" {
			t.Errorf("class %d has no name or doc", c)
		}
	}
	for _, s := range allStates() {
		for c, a := range s.failures {
			if actionDocs[a] == "" || classNames[c] == "" {
				t.Errorf("%s: undocumented class %d or action %d", s.name, c, a)
			}
		}
	}
}
