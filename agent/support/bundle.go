package support

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/fwagent/fwagent/agent/audit"
)

// DefaultMaxLogBytes caps the logs in a support bundle (before redaction).
const DefaultMaxLogBytes = 20 << 20

// maxStateFileBytes caps each state file in a bundle; longer files keep their end.
const maxStateFileBytes = 8 << 20

// Bundle modes recorded in index.json.
const (
	ModeRedacted = "redacted"
	ModePersonal = "personal"
)

// BundleInput is what a support bundle is made of.
type BundleInput struct {
	LogDir          string    // log directory (fwagent.log and rotated files)
	StateDir        string    // state directory (journal, history, audit trail, last manifest)
	ConfigYAML      []byte    // the configuration without secrets (config.RedactedYAML)
	Identity        any       // the device identity last read; nil: unknown
	AgentVersion    string    // fwagent version
	IncludePersonal bool      // keep IP and MAC addresses, device IDs and names, emails and user names (secrets go anyway)
	MaxLogBytes     int64     // cap of the logs; 0: DefaultMaxLogBytes
	Now             time.Time // creation time; zero: time.Now
	Notes           []string  // remarks for index.json, e.g. why the config could not be loaded
	// RetentionDays, when more than zero, leaves out log lines stamped
	// earlier than Now minus this many days (log.retention_days): the bundle
	// must not carry personal data the device should no longer hold. Lines
	// without a time are kept.
	RetentionDays int
	// KnownSecrets are literal values (the configured device password,
	// tokens) removed wherever they appear, even in free text; values shorter
	// than MinKnownLen are ignored.
	KnownSecrets []string
	// KnownPersonal are literal personal values (the configured device user
	// name) replaced unless IncludePersonal is set; shorter than MinKnownLen: ignored.
	KnownPersonal []string
	// DeviceDirs are the state folders of a site's recorders, by name: each
	// one's journal, history, audit trail and identity go in as
	// state/devices/NAME/..., redacted like the rest.
	DeviceDirs map[string]string
}

// MinKnownLen is the shortest known value replaced literally: shorter ones
// would mangle unrelated text.
const MinKnownLen = 4

// BundleIndex is index.json, the first file of a bundle.
type BundleIndex struct {
	Mode          string       `json:"mode"` // ModeRedacted or ModePersonal
	Created       time.Time    `json:"created"`
	AgentVersion  string       `json:"agent_version"`
	GoVersion     string       `json:"go_version"`
	OS            string       `json:"os"`
	Arch          string       `json:"arch"`
	StateDirFree  int64        `json:"state_dir_free_bytes"` // -1: unknown
	Audit         string       `json:"audit"`                // result of verifying the audit trail before redaction
	Files         []BundleFile `json:"files"`
	Notes         []string     `json:"notes,omitempty"`
	RedactionNote string       `json:"redaction"`
}

// BundleFile describes one file of a bundle.
type BundleFile struct {
	Name      string `json:"name"`
	Source    string `json:"source,omitempty"` // file it came from (base name)
	Size      int    `json:"size"`             // bytes in the bundle
	Truncated bool   `json:"truncated,omitempty"`
}

// stateFiles are the state directory files a bundle carries, besides the
// last manifest (any file whose name starts with "manifest" or
// "last-manifest"; a signed DSSE envelope goes in decoded, as
// <name>.decoded.json, never as the envelope).
var stateFiles = []string{"journal.json", "history.jsonl", audit.FileName, audit.HeadFileName, "identity.json"}

// WriteBundle writes a support bundle (tar.gz) to w. Every file passes
// through Redact: secrets are always removed, personal data unless
// IncludePersonal is set. A signed manifest envelope is replaced by its
// decoded payload (the base64 would hide its text from the redactor); one
// that cannot be decoded is left out. docs/privacy.md lists the contents. Logs come newest first and are capped at
// MaxLogBytes in total; the newest part of a log that crosses the cap is kept.
func WriteBundle(w io.Writer, in BundleInput) error {
	if in.MaxLogBytes <= 0 {
		in.MaxLogBytes = DefaultMaxLogBytes
	}
	if in.Now.IsZero() {
		in.Now = time.Now()
	}
	in.Now = in.Now.UTC()
	type file struct {
		BundleFile
		data []byte
	}
	var files []file
	known := knownValues(in)
	add := func(name, source string, data []byte, truncated bool) {
		if known != nil {
			data = []byte(known.Replace(string(data)))
		}
		data = RedactBytes(data, in.IncludePersonal)
		files = append(files, file{BundleFile{Name: name, Source: source, Size: len(data), Truncated: truncated}, data})
	}
	notes := slices.Clone(in.Notes)

	// Logs, newest first.
	if in.LogDir != "" {
		logs, err := LogFiles(in.LogDir)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			notes = append(notes, fmt.Sprintf("cannot list logs: %v", err))
		}
		budget, expired := in.MaxLogBytes, 0
		for i := len(logs) - 1; i >= 0; i-- {
			base := filepath.Base(logs[i])
			if budget <= 0 {
				notes = append(notes, "log cap reached: left out "+base)
				continue
			}
			data, truncated, err := readTail(logs[i], budget)
			if err != nil {
				notes = append(notes, fmt.Sprintf("cannot read %s: %v", base, err))
				continue
			}
			if in.RetentionDays > 0 {
				var n int
				data, n = dropLinesBefore(data, in.Now.AddDate(0, 0, -in.RetentionDays))
				expired += n
				if len(data) == 0 && n > 0 {
					continue
				}
			}
			budget -= int64(len(data))
			if truncated {
				budget = 0 // the rest of this file did not fit: older files cannot either
			}
			if len(data) == 0 && truncated {
				notes = append(notes, "log cap reached: left out "+base)
				continue
			}
			add("logs/"+strings.TrimSuffix(base, ".gz"), base, data, truncated)
		}
		if expired > 0 {
			notes = append(notes, fmt.Sprintf("left out %d log lines older than the %d-day log retention", expired, in.RetentionDays))
		}
	}

	// State files and the last manifest.
	auditResult := "no state directory"
	addState := func(dir, prefix string) string {
		names := slices.Clone(stateFiles)
		if ents, err := os.ReadDir(dir); err == nil {
			for _, e := range ents {
				n := e.Name()
				if e.Type().IsRegular() && (strings.HasPrefix(n, "manifest") || strings.HasPrefix(n, "last-manifest")) {
					names = append(names, n)
				}
			}
		} else {
			notes = append(notes, fmt.Sprintf("cannot list the state directory: %v", err))
		}
		for _, n := range names {
			if n == "identity.json" && in.Identity != nil && prefix == "state/" {
				continue
			}
			data, truncated, err := readTail(filepath.Join(dir, n), maxStateFileBytes)
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			if err != nil {
				notes = append(notes, fmt.Sprintf("cannot read %s: %v", n, err))
				continue
			}
			if view, ok := decodedEnvelope(data, n, truncated); ok {
				// The base64 payload would hide its text from the
				// redactor: the envelope stays out, its decoded view goes in.
				add(prefix+strings.TrimSuffix(n, ".json")+".decoded.json", n, view, false)
				continue
			}
			if strings.HasPrefix(n, "manifest") || strings.HasPrefix(n, "last-manifest") {
				if looksLikeEnvelope(data) {
					notes = append(notes, fmt.Sprintf("left out %s: a signed envelope that could not be decoded for redaction", n))
					continue
				}
			}
			add(prefix+n, n, data, truncated)
		}
		switch n, err := audit.Verify(dir); {
		case !audit.Exists(dir):
			return "no audit trail"
		case err != nil:
			return "broken: " + err.Error()
		case n == 0:
			return "empty: no decision recorded yet"
		default:
			return fmt.Sprintf("intact: %d entries", n)
		}
	}
	if in.StateDir != "" {
		auditResult = addState(in.StateDir, "state/")
		if len(in.DeviceDirs) > 0 {
			names := make([]string, 0, len(in.DeviceDirs))
			for name := range in.DeviceDirs {
				names = append(names, name)
			}
			slices.Sort(names)
			results := make([]string, 0, len(names))
			for _, name := range names {
				results = append(results, name+": "+addState(in.DeviceDirs[name], "state/devices/"+name+"/"))
			}
			auditResult = strings.Join(results, "; ")
		}
	}

	if in.ConfigYAML != nil {
		add("config.yaml", "", in.ConfigYAML, false)
	}
	// The identity the caller read now goes in as state/identity.json;
	// without one, the file (the last identity the agent read) does.
	if in.Identity != nil {
		ident, err := json.MarshalIndent(in.Identity, "", "  ")
		if err != nil {
			return fmt.Errorf("encode identity for the bundle: %w", err)
		}
		add("state/identity.json", "", append(ident, '\n'), false)
	}
	free := freeBytes(in.StateDir)
	add("system.txt", "", systemText(in, free), false)

	mode := ModeRedacted
	note := "secrets removed; IP and MAC addresses, device IDs and names, emails and user names replaced by [REDACTED:...] markers"
	if in.IncludePersonal {
		mode = ModePersonal
		note = "secrets removed; personal data (IP and MAC addresses, device IDs and names, emails, user names) INCLUDED at the operator's request"
	}
	idx := BundleIndex{
		Mode: mode, Created: in.Now, AgentVersion: in.AgentVersion,
		GoVersion: runtime.Version(), OS: runtime.GOOS, Arch: runtime.GOARCH,
		StateDirFree: free, Audit: Redact(auditResult, in.IncludePersonal),
		Notes: redactAll(notes, in.IncludePersonal), RedactionNote: note,
	}
	for _, f := range files {
		idx.Files = append(idx.Files, f.BundleFile)
	}
	ib, err := json.MarshalIndent(idx, "", "  ")
	if err != nil {
		return fmt.Errorf("encode bundle index: %w", err)
	}

	gz := gzip.NewWriter(w)
	tw := tar.NewWriter(gz)
	put := func(name string, data []byte) error {
		hdr := &tar.Header{Name: name, Mode: 0o600, Size: int64(len(data)), ModTime: in.Now, Typeflag: tar.TypeReg, Format: tar.FormatPAX}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		_, err := tw.Write(data)
		return err
	}
	if err := put("index.json", append(ib, '\n')); err != nil {
		return fmt.Errorf("write bundle: %w", err)
	}
	for _, f := range files {
		if err := put(f.Name, f.data); err != nil {
			return fmt.Errorf("write bundle: %w", err)
		}
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("write bundle: %w", err)
	}
	if err := gz.Close(); err != nil {
		return fmt.Errorf("write bundle: %w", err)
	}
	return nil
}

// envelopeView is what a bundle carries instead of a DSSE envelope: the
// payload decoded, so that the redactor sees its text, and what identifies
// the envelope without its signatures' bytes.
type envelopeView struct {
	Note           string          `json:"note"`
	PayloadType    string          `json:"payloadType"`
	EnvelopeSHA256 string          `json:"envelope_sha256"` // of the file on the device
	PayloadSHA256  string          `json:"payload_sha256"`  // of the decoded payload, before redaction
	KeyIDs         []string        `json:"signature_keyids"`
	Payload        json.RawMessage `json:"payload,omitempty"`      // when the payload is JSON
	PayloadText    string          `json:"payload_text,omitempty"` // otherwise
}

// dsseEnvelope is the part of a DSSE envelope a bundle reads.
type dsseEnvelope struct {
	PayloadType string `json:"payloadType"`
	Payload     string `json:"payload"`
	Signatures  []struct {
		KeyID string `json:"keyid"`
	} `json:"signatures"`
}

// looksLikeEnvelope reports whether data carries a DSSE payload field.
func looksLikeEnvelope(data []byte) bool {
	return bytes.Contains(data, []byte(`"payload"`)) && bytes.Contains(data, []byte(`"payloadType"`))
}

// decodedEnvelope returns the indented JSON of an envelopeView for a DSSE
// envelope (from the state file name), or false when data is not one.
func decodedEnvelope(data []byte, name string, truncated bool) ([]byte, bool) {
	if truncated || !looksLikeEnvelope(data) {
		return nil, false
	}
	var env dsseEnvelope
	if err := json.Unmarshal(data, &env); err != nil || env.PayloadType == "" || env.Payload == "" {
		return nil, false
	}
	payload, err := base64.StdEncoding.DecodeString(env.Payload)
	if err != nil {
		if payload, err = base64.URLEncoding.DecodeString(env.Payload); err != nil {
			return nil, false
		}
	}
	esum, psum := sha256.Sum256(data), sha256.Sum256(payload)
	v := envelopeView{
		Note:           "decoded from " + name + " for support: the signed envelope is left out (its base64 payload cannot be redacted); this copy is redacted and does not verify",
		PayloadType:    env.PayloadType,
		EnvelopeSHA256: hex.EncodeToString(esum[:]),
		PayloadSHA256:  hex.EncodeToString(psum[:]),
		KeyIDs:         []string{},
	}
	for _, sig := range env.Signatures {
		v.KeyIDs = append(v.KeyIDs, sig.KeyID)
	}
	if json.Valid(payload) {
		v.Payload = payload
	} else {
		v.PayloadText = strings.ToValidUTF8(string(payload), "?")
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return nil, false
	}
	return b.Bytes(), true
}

// knownValues builds a replacer for the literal known values, longest first.
func knownValues(in BundleInput) *strings.Replacer {
	type kv struct{ v, marker string }
	var list []kv
	for _, v := range in.KnownSecrets {
		if len(v) >= MinKnownLen {
			list = append(list, kv{v, MarkerSecret})
		}
	}
	if !in.IncludePersonal {
		for _, v := range in.KnownPersonal {
			if len(v) >= MinKnownLen {
				list = append(list, kv{v, MarkerUser})
			}
		}
	}
	if len(list) == 0 {
		return nil
	}
	sort.SliceStable(list, func(i, j int) bool { return len(list[i].v) > len(list[j].v) })
	var pairs []string
	for _, p := range list {
		pairs = append(pairs, p.v, p.marker)
	}
	return strings.NewReplacer(pairs...)
}

func redactAll(list []string, includePersonal bool) []string {
	out := make([]string, len(list))
	for i, s := range list {
		out[i] = Redact(s, includePersonal)
	}
	return out
}

// dropLinesBefore removes the JSON log lines whose time is before cutoff and
// returns what is left and how many lines it removed. Lines without a
// readable "time" field stay.
func dropLinesBefore(data []byte, cutoff time.Time) ([]byte, int) {
	out := data[:0:0]
	dropped := 0
	for len(data) > 0 {
		line := data
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line = data[:i+1]
		}
		data = data[len(line):]
		if t, ok := lineTime(line); ok && t.Before(cutoff) {
			dropped++
			continue
		}
		out = append(out, line...)
	}
	return out, dropped
}

// lineTime finds the "time":"..." field of a JSON log line without decoding it.
func lineTime(line []byte) (time.Time, bool) {
	const key = `"time":"`
	i := bytes.Index(line, []byte(key))
	if i < 0 {
		return time.Time{}, false
	}
	rest := line[i+len(key):]
	j := bytes.IndexByte(rest, '"')
	if j < 0 {
		return time.Time{}, false
	}
	t, err := time.Parse(time.RFC3339Nano, string(rest[:j]))
	return t, err == nil
}

// readTail reads a file (decompressing .gz) and keeps at most max bytes of
// its end, starting at a line boundary.
func readTail(path string, max int64) ([]byte, bool, error) {
	rc, err := openLog(path)
	if err != nil {
		return nil, false, err
	}
	defer rc.Close()
	// Keep a ring of the last 2*max bytes at most while reading.
	var buf bytes.Buffer
	chunk := make([]byte, 64*1024)
	truncated := false
	for {
		n, err := rc.Read(chunk)
		buf.Write(chunk[:n])
		if int64(buf.Len()) > 2*max {
			keep := buf.Bytes()[int64(buf.Len())-max:]
			buf = *bytes.NewBuffer(append([]byte(nil), keep...))
			truncated = true
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, false, err
		}
	}
	data := buf.Bytes()
	if int64(len(data)) > max {
		data = data[int64(len(data))-max:]
		truncated = true
	}
	if truncated {
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			data = data[i+1:]
		}
	}
	return data, truncated, nil
}

// systemText describes the machine: OS, kernel, CPUs and free disk.
func systemText(in BundleInput, free int64) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "created: %s\n", in.Now.Format(time.RFC3339))
	fmt.Fprintf(&b, "agent_version: %s\n", in.AgentVersion)
	fmt.Fprintf(&b, "go_version: %s\n", runtime.Version())
	fmt.Fprintf(&b, "os: %s\narch: %s\ncpus: %d\n", runtime.GOOS, runtime.GOARCH, runtime.NumCPU())
	if v, err := os.ReadFile("/proc/version"); err == nil {
		fmt.Fprintf(&b, "kernel: %s\n", strings.TrimSpace(string(v)))
	}
	fmt.Fprintf(&b, "state_dir: %s\nstate_dir_free_bytes: %d\n", in.StateDir, free)
	if in.LogDir != "" {
		fmt.Fprintf(&b, "log_dir: %s\nlog_dir_free_bytes: %d\n", in.LogDir, freeBytes(in.LogDir))
	}
	if ents, err := os.ReadDir(in.StateDir); err == nil {
		var names []string
		for _, e := range ents {
			if info, err := e.Info(); err == nil {
				names = append(names, fmt.Sprintf("  %s %s %d %s", e.Name(), info.Mode(), info.Size(), info.ModTime().UTC().Format(time.RFC3339)))
			}
		}
		sort.Strings(names)
		fmt.Fprintf(&b, "state_dir_listing:\n%s\n", strings.Join(names, "\n"))
	}
	return []byte(b.String())
}
