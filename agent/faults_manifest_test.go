package agent_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"testing"
	"time"

	"github.com/fwagent/fwagent/agent"
	"github.com/fwagent/fwagent/agent/journal"
	"github.com/fwagent/fwagent/internal/lab"
	"github.com/fwagent/fwagent/manifest"
)

// TestManifestFaultsAreRefusedBeforeAnyDownload serves every kind of bad
// manifest an attacker or a broken publisher could and checks that the
// agent refuses each one with its stable code, downloads nothing and never
// touches the recorder.
func TestManifestFaultsAreRefusedBeforeAnyDownload(t *testing.T) {
	cases := []struct {
		name string
		opts lab.Options
		// serve publishes the bad manifest (after a first cycle when
		// accept is set, so that the agent has accepted a serial).
		accept bool
		serve  func(t *testing.T, w *world)
		code   string
	}{
		{
			name: "an expired manifest is refused as expired",
			opts: lab.Options{Releases: []lab.Release{custom4125}},
			serve: func(t *testing.T, w *world) {
				w.republish(t, func(m *manifest.Manifest) {
					m.Issued, m.Expires = time.Now().Add(-40*24*time.Hour), time.Now().Add(-time.Hour)
				})
			},
			code: string(manifest.CodeExpired),
		},
		{
			name: "a manifest issued an hour in the future is refused as not yet valid",
			opts: lab.Options{Releases: []lab.Release{custom4125}},
			serve: func(t *testing.T, w *world) {
				w.republish(t, func(m *manifest.Manifest) {
					m.Issued, m.Expires = time.Now().Add(time.Hour), time.Now().Add(30*24*time.Hour)
				})
			},
			code: string(manifest.CodeNotYetValid),
		},
		{
			name: "a manifest with a serial below the accepted one is refused as a rollback",
			opts: lab.Options{Serial: 5}, accept: true,
			serve: func(t *testing.T, w *world) {
				m := w.lab.Manifest()
				m.Serial = 3
				m.Issued, m.Expires = time.Time{}, time.Time{}
				m.Releases = append(m.Releases, w.release(t, custom4125))
				if err := w.lab.Publish(m); err != nil {
					t.Fatal(err)
				}
			},
			code: string(manifest.CodeRollback),
		},
		{
			name: "the accepted serial with another payload is refused as equivocation",
			opts: lab.Options{Serial: 5}, accept: true,
			serve: func(t *testing.T, w *world) {
				m := w.lab.Manifest()
				m.Releases = append(m.Releases, w.release(t, custom4125))
				if err := w.lab.Publish(m); err != nil {
					t.Fatal(err)
				}
			},
			code: string(manifest.CodeEquivocation),
		},
		{
			name: "a payload changed after signing is refused as a bad signature",
			opts: lab.Options{Releases: []lab.Release{custom4125}},
			serve: func(t *testing.T, w *world) {
				m := w.republish(t, func(*manifest.Manifest) {})
				env := tamper(t, w.lab.Envelope(), func(payload []byte) []byte {
					return bytes.Replace(payload, []byte(`"4.1.25"`), []byte(`"4.1.26"`), 1)
				})
				if err := w.lab.PublishEnvelope(m, env); err != nil {
					t.Fatal(err)
				}
			},
			code: string(manifest.CodeBadSignature),
		},
		{
			name: "one signature where the threshold is two is refused",
			opts: lab.Options{Releases: []lab.Release{custom4125}, Keys: 2, Threshold: 2},
			serve: func(t *testing.T, w *world) {
				m := w.lab.Manifest()
				m.Serial++
				m.Issued, m.Expires = time.Time{}, time.Time{}
				if err := w.lab.PublishSigned(m, w.lab.Keys[0]); err != nil {
					t.Fatal(err)
				}
			},
			code: string(manifest.CodeThresholdNotMet),
		},
		{
			name: "a manifest signed by a key nobody trusts is refused",
			opts: lab.Options{Releases: []lab.Release{custom4125}},
			serve: func(t *testing.T, w *world) {
				_, stranger, err := manifest.GenerateKey()
				if err != nil {
					t.Fatal(err)
				}
				m := w.lab.Manifest()
				m.Serial++
				m.Issued, m.Expires = time.Time{}, time.Time{}
				if err := w.lab.PublishSigned(m, stranger); err != nil {
					t.Fatal(err)
				}
			},
			code: string(manifest.CodeThresholdNotMet),
		},
		{
			name: "a manifest larger than the cap is refused without reading it all",
			opts: lab.Options{Releases: []lab.Release{custom4125}},
			serve: func(t *testing.T, w *world) {
				huge := append([]byte(`{"payload":"`), bytes.Repeat([]byte("A"), 2<<20)...)
				if err := w.lab.PublishEnvelope(w.lab.Manifest(), append(huge, `"}`...)); err != nil {
					t.Fatal(err)
				}
			},
			code: "too_large",
		},
		{
			name: "a malformed envelope is refused as malformed",
			opts: lab.Options{Releases: []lab.Release{custom4125}},
			serve: func(t *testing.T, w *world) {
				if err := w.lab.PublishEnvelope(w.lab.Manifest(), []byte(`{"payloadType": 12, "payload": [}`)); err != nil {
					t.Fatal(err)
				}
			},
			code: string(manifest.CodeMalformed),
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t, tc.opts)
			if tc.accept {
				if out := w.cycle(t, agent.ModeUpdateNow); out.Result != agent.ResultNothing {
					t.Fatalf("first cycle: %s %v, want nothing to do", out.Result, out.Codes)
				}
			}
			tc.serve(t, w)
			for i := 0; i < 2; i++ {
				out := w.cycle(t, agent.ModeUpdateNow)
				if out.Result != agent.ResultFailed || !hasCode(out, tc.code) {
					t.Fatalf("cycle %d: %s %v (%s), want failed with %s", i, out.Result, out.Codes, out.Message, tc.code)
				}
			}
			if got := w.lab.ImageBytes.Load(); got != 0 {
				t.Fatalf("%d image bytes downloaded under a refused manifest", got)
			}
			w.assertUntouched(t)
			w.assertJournalAndAudit(t)
			if js := w.agent.Journal.State(); js.Current != nil {
				t.Fatalf("an update was started under a refused manifest: %+v", js.Current)
			}
		})
	}
}

// TestReleaseWithWrongSizeOrDigestIsNeverInstalled publishes a release that
// points at the right image but declares a size one byte off, and one that
// declares the right size but another digest.
func TestReleaseWithWrongSizeOrDigestIsNeverInstalled(t *testing.T) {
	cases := []struct {
		name string
		rel  lab.Release
		code string
	}{
		{"the right digest with the wrong size is refused as a size mismatch", lab.Release{WrongSize: true}, "size_mismatch"},
		{"the right size with the wrong digest is refused as a digest mismatch", lab.Release{WrongDigest: true}, "digest_mismatch"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rel := tc.rel
			rel.ID, rel.Version, rel.Variant = custom4125.ID, custom4125.Version, custom4125.Variant
			w := newWorld(t, lab.Options{Releases: []lab.Release{rel}})
			out := w.cycle(t, agent.ModeUpdateNow)
			if out.Result != agent.ResultFailed || !hasCode(out, tc.code) {
				t.Fatalf("%s %v (%s), want failed with %s", out.Result, out.Codes, out.Message, tc.code)
			}
			w.assertUntouched(t)
			w.assertJournalAndAudit(t)
			if js := w.agent.Journal.State(); !js.Quarantined(rel.ID, 1) || js.Current != nil {
				t.Fatalf("journal: quarantine %+v, current %+v; want the release quarantined and no update", js.Quarantine, js.Current)
			}
		})
	}
}

// TestRefusedManifestLeavesTheUpdateInProgressAlone: a bad manifest served
// while a verified image waits for its window says nothing about the
// release; the update is neither failed nor quarantined, and installs once
// a good manifest is back and the window opens.
func TestRefusedManifestLeavesTheUpdateInProgressAlone(t *testing.T) {
	start := time.Now().Add(3 * time.Hour)
	win := start.Format("15:04") + "-" + start.Add(time.Hour).Format("15:04")
	w := newWorld(t, lab.Options{Releases: []lab.Release{custom4125}, ExtraYAML: "maintenance_windows: [\"daily " + win + "\"]\n"})
	if out := w.cycle(t, agent.ModeUpdate); out.Result != agent.ResultWaiting {
		t.Fatalf("%s, want waiting for the window", out.Result)
	}
	w.republish(t, func(m *manifest.Manifest) {
		m.Issued, m.Expires = time.Now().Add(-40*24*time.Hour), time.Now().Add(-time.Hour)
	})
	out := w.cycle(t, agent.ModeUpdate)
	if out.Result != agent.ResultFailed || !hasCode(out, string(manifest.CodeExpired)) {
		t.Fatalf("%s %v, want failed with expired", out.Result, out.Codes)
	}
	js := w.agent.Journal.State()
	if js.Current == nil || js.Current.Step != journal.StepWaitWindow || len(js.Quarantine) != 0 || js.Attempts[custom4125.ID] != 0 {
		t.Fatalf("journal after a refused manifest: current %+v, quarantine %+v, attempts %+v; want the update kept as it was", js.Current, js.Quarantine, js.Attempts)
	}
	w.republish(t, func(*manifest.Manifest) {})
	w.agent.Now = func() time.Time { return start.Add(time.Minute) }
	if out := w.cycle(t, agent.ModeUpdate); out.Result != agent.ResultInstalled {
		t.Fatalf("%s %v (%s), want installed in the window", out.Result, out.Codes, out.Message)
	}
	w.assertInstalledOnce(t)
}

// tamper decodes env's payload, passes it to edit and re-encodes it,
// keeping the signatures.
func tamper(t *testing.T, env []byte, edit func([]byte) []byte) []byte {
	t.Helper()
	var e map[string]any
	if err := json.Unmarshal(env, &e); err != nil {
		t.Fatal(err)
	}
	payload, err := base64.StdEncoding.DecodeString(e["payload"].(string))
	if err != nil {
		t.Fatal(err)
	}
	changed := edit(payload)
	if bytes.Equal(changed, payload) {
		t.Fatal("tamper changed nothing")
	}
	e["payload"] = base64.StdEncoding.EncodeToString(changed)
	out, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	return out
}
