package main

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fwagent/fwagent/internal/lab"
	"github.com/fwagent/fwagent/internal/nvrsim"
	"github.com/fwagent/fwagent/internal/testport"
	"github.com/fwagent/fwagent/manifest"
)

// withUserinfo puts user:pass into an http URL.
func withUserinfo(raw, user, pass string) string {
	return strings.Replace(raw, "://", "://"+user+":"+pass+"@", 1)
}

// closedURL is an http URL on a loopback port reserved for the test that
// nobody listens on: connections are refused.
func closedURL(t *testing.T, user, pass, path string) string {
	t.Helper()
	addr := testport.Addr(t)
	if user == "" {
		return "http://" + addr + path
	}
	return "http://" + user + ":" + pass + "@" + addr + path
}

// localRecords reads what the agent keeps on the device besides the signed
// manifest and images: the audit trail, the journal, the history, the last
// identity, the report queue, and every log file (rotated ones decompressed).
func localRecords(t *testing.T, l *lab.Lab) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, dir := range []string{l.StateDir, l.LogDir} {
		err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			name := d.Name()
			if d.IsDir() {
				if path != dir && (name == "images" || strings.Contains(name, "backup")) {
					return filepath.SkipDir // images and the recorder's config exports
				}
				return nil
			}
			if name == "manifest.dsse.json" || strings.HasSuffix(name, ".dav") {
				return nil // the signed envelope as delivered: not written by the agent
			}
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			if strings.HasSuffix(name, ".gz") {
				zr, err := gzip.NewReader(bytes.NewReader(b))
				if err != nil {
					return err
				}
				if b, err = io.ReadAll(zr); err != nil {
					return err
				}
			}
			rel, _ := filepath.Rel(l.Dir, path)
			out[rel] = string(b)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// The privacy corpus (issue 14): every leak the outside review found is
// planted, a real agent runs real cycles against loopback servers, and then
// neither the device's own records (audit trail, journal, history, logs) hold
// a credential, nor the default support bundle a credential or personal
// data; the --include-personal bundle holds the personal data and still no
// credential.
func TestPrivacyCorpus(t *testing.T) {
	const (
		mfUser, mfPass     = "mf-user-7", "MfPass-7x9"
		deadUser, deadPass = "dead-user-3", "DeadPass-3k1"
		imgUser, imgPass   = "img-user-5", "ImgPass-5q2"
		repUser, repPass   = "rep-user-2", "RepPass-2w8"
		repToken           = "ReportToken-0a9b8c7d"
		bearer             = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJub3RlcyJ9.QmVhcmVyU2ln"
		email              = "jane.doe@customer.example"
		noteIPv4, noteIPv6 = "198.51.100.23", "2001:db8:4::23"
		noteMAC            = "00:1b:44:11:3a:b7"
		deviceName         = "Smith residence"
	)
	basic := base64.StdEncoding.EncodeToString([]byte("notes-user:NotesPass-4"))
	notes := "custom firmware; questions to " + email + "; site router " + noteIPv4 + " and " + noteIPv6 +
		"; camera " + noteMAC + "; for the old mirror send Authorization: Basic " + basic + "; the API wants bearer " + bearer

	reports := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "maintenance", http.StatusServiceUnavailable)
	}))
	t.Cleanup(reports.Close)

	rels := demoReleases(64 << 10)
	rels[0].Notes = notes
	l, err := lab.Start(lab.Options{
		Dir:       t.TempDir(),
		Device:    nvrsim.Config{Model: demoModel, Firmware: demoFirmware, Variant: "custom", Serial: demoSerial, DeviceName: deviceName},
		Releases:  rels,
		ExtraYAML: "report:\n  url: " + withUserinfo(reports.URL, repUser, repPass) + "/reports\n  token: " + repToken + "\n",
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.Close)
	sim := l.Sim.Config()

	// Manifest URLs with user and password: a dead one first, so that its
	// error (which quotes the URL) is logged, then the live one.
	cfg, err := os.ReadFile(l.ConfigPath)
	if err != nil {
		t.Fatal(err)
	}
	mfURLs := "urls: [" + closedURL(t, deadUser, deadPass, "/manifest.json") + ", " + withUserinfo(l.ManifestURL(), mfUser, mfPass) + "]"
	cfg = bytes.Replace(cfg, []byte("urls: ["+l.ManifestURL()+"]"), []byte(mfURLs), 1)
	if !bytes.Contains(cfg, []byte(mfPass)) {
		t.Fatalf("could not plant the manifest URLs in the config:\n%s", cfg)
	}
	if err := os.WriteFile(l.ConfigPath, cfg, 0o600); err != nil {
		t.Fatal(err)
	}

	// Cycle 1: a signed manifest whose image mirror carries a user and a
	// password. The agent refuses it (credentials never go in a manifest);
	// the refusal reaches the journal, the audit trail and the log.
	m := l.Manifest()
	good := m.Releases[0].Image.URLs[0]
	m.Serial++
	m.Issued = time.Now().UTC().Truncate(time.Second) // as the lab stamps what it publishes
	m.Expires = m.Issued.Add(24 * time.Hour)
	payload, err := m.Marshal(manifest.ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	payload = bytes.Replace(payload, []byte(good), []byte(withUserinfo(good, imgUser, imgPass)), 1)
	env, err := manifest.Sign(payload, l.Keys...)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.PublishEnvelope(m, env); err != nil {
		t.Fatal(err)
	}
	if stdout, stderr, code := runFwagent(t, "update", "--now", "--config", l.ConfigPath); code == exitOK {
		t.Fatalf("update with a mirror URL carrying a password succeeded:\n%s\n%s", stdout, stderr)
	}
	// Cycle 2: a dead mirror first, whose error quotes its URL, then the
	// live one; the install goes through.
	m = l.Manifest()
	m.Releases[0].Image.URLs = []string{closedURL(t, "", "", "/images/x.dav"), good}
	m.Serial++
	m.Issued, m.Expires = time.Time{}, time.Time{}
	if err := l.Publish(m); err != nil {
		t.Fatal(err)
	}
	if stdout, stderr, code := runFwagent(t, "update", "--now", "--config", l.ConfigPath); code != exitOK {
		t.Fatalf("update exited %d\n%s\n%s", code, stdout, stderr)
	}
	if st := l.Sim.State(); st.Installs != 1 || st.Bricked {
		t.Fatalf("simulator: %+v", st)
	}

	credentials := []string{mfPass, deadPass, imgPass, repPass, repToken, basic, bearer, sim.Password}
	// Personal data a bundle may carry only with --include-personal.
	personal := []string{email, noteIPv4, noteIPv6, noteMAC, deviceName, mfUser, deadUser, repUser}
	// The recorder's MAC address and device ID, as the agent recorded them.
	identity := localRecords(t, l)["state/identity.json"]
	for _, key := range []string{`"macAddress": "`, `"deviceID": "`} {
		i := strings.Index(identity, key)
		if i < 0 {
			t.Fatalf("state/identity.json lacks %s:\n%s", key, identity)
		}
		v := identity[i+len(key):]
		personal = append(personal, v[:strings.IndexByte(v, '"')])
	}

	// The device's own records: no credential, ever.
	records := localRecords(t, l)
	for name, content := range records {
		for _, c := range credentials {
			if strings.Contains(content, c) {
				t.Errorf("%s holds the credential %q", name, c)
			}
		}
		for _, u := range []string{mfUser, deadUser, imgUser} {
			if strings.HasPrefix(name, "state/") && strings.Contains(content, u) {
				t.Errorf("%s holds the URL user name %q", name, u)
			}
		}
	}
	// The planted leaks did flow: the accepted manifest's URL is in the
	// trail (without its user information), the dead mirrors in the log.
	if !strings.Contains(records["state/audit.jsonl"], "from "+l.ManifestURL()) {
		t.Errorf("audit trail lacks the manifest URL without userinfo %s:\n%s", l.ManifestURL(), records["state/audit.jsonl"])
	}
	logs := ""
	for name, content := range records {
		if strings.HasPrefix(name, "log/") {
			logs += content
		}
	}
	for _, want := range []string{"manifest fetch failed", "download from this url failed"} {
		if !strings.Contains(logs, want) {
			t.Errorf("the log lacks %q: the planted failure did not happen", want)
		}
	}

	bundle := func(args ...string) map[string]string {
		t.Helper()
		out := filepath.Join(t.TempDir(), "b.tar.gz")
		if stdout, stderr, code := runFwagent(t, append([]string{"support-bundle", "-o", out, "--config", l.ConfigPath}, args...)...); code != exitOK {
			t.Fatalf("support-bundle %v exited %d\n%s\n%s", args, code, stdout, stderr)
		}
		return readBundle(t, out)
	}
	def := bundle()
	for _, want := range []string{"config.yaml", "state/identity.json", "state/audit.jsonl", "state/journal.json", "state/manifest.dsse.decoded.json", "logs/fwagent.log"} {
		if _, ok := def[want]; !ok {
			t.Errorf("default bundle lacks %s", want)
		}
	}
	for name, content := range def {
		for _, bad := range append(append([]string{}, credentials...), personal...) {
			if strings.Contains(content, bad) {
				t.Errorf("default bundle: %s holds %q", name, bad)
			}
		}
	}
	withPersonal := bundle("--include-personal")
	all := ""
	for name, content := range withPersonal {
		all += content
		for _, c := range credentials {
			if strings.Contains(content, c) {
				t.Errorf("--include-personal bundle: %s holds the credential %q", name, c)
			}
		}
	}
	for _, p := range personal {
		if !strings.Contains(all, p) {
			t.Errorf("--include-personal bundle lacks the personal value %q", p)
		}
	}
}
