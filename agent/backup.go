package agent

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/google/renameio/v2"
	"github.com/sirupsen/logrus"

	"github.com/fwagent/fwagent/agent/audit"
	"github.com/fwagent/fwagent/agent/config"
	"github.com/fwagent/fwagent/device"
	"github.com/fwagent/fwagent/internal/statefile"
)

// BackupDir is the folder of state_dir holding configuration backups. The
// support bundle never includes it (it copies named state files only).
const BackupDir = "backups"

// BackupsKept is how many configuration backups are kept per recorder; the
// oldest beyond it are deleted after each new one.
const BackupsKept = 3

// backupExt ends every backup file's name; backupTime is the time in it
// (UTC, sortable).
const (
	backupExt  = ".cfg"
	backupTime = "20060102T150405.000Z"
)

// Backup is one configuration backup in the state directory.
type Backup struct {
	Path   string    `json:"path"`
	Serial string    `json:"serial"` // the recorder's serial as used in the file name
	Time   time.Time `json:"time"`
	Size   int64     `json:"size"`
	SHA256 string    `json:"sha256"`
}

// backupBeforeUpload backs up the recorder's configuration as
// install.config_backup says. A failure that must defer the install comes
// back as a *deferral; with best_effort every failure is logged and nil
// returned.
func (c *cycle) backupBeforeUpload(ctx context.Context) (*Backup, error) {
	a := c.a
	mode := a.Config.Install.ConfigBackup
	if mode == config.BackupOff {
		c.noteOnce("backup-off", "install.config_backup is off: no configuration backup is made before uploads")
		return nil, nil
	}
	b, err := a.BackupConfig(ctx, c.id)
	switch {
	case err != nil && refusedLogin(err):
		return nil, err // the failure path: a refused login is never repeated
	case err == nil:
		c.log.WithFields(logrus.Fields{"path": b.Path, "bytes": b.Size, "sha256": b.SHA256}).Info("recorder configuration backed up")
		c.audit(audit.Entry{Event: audit.EventConfigBackup, Message: fmt.Sprintf("%s: %d bytes, sha256 %s", filepath.Base(b.Path), b.Size, b.SHA256)})
		return b, nil
	case errors.Is(err, device.ErrNotSupported) && mode == config.BackupRequired:
		return nil, &deferral{code: CodeBackupNotSupported, msg: fmt.Sprintf("the recorder cannot export its configuration (%v), and install.config_backup is required: set install.config_backup: best_effort (or off) to install without a backup", err)}
	case errors.Is(err, device.ErrNotSupported):
		c.noteOnce("backup-unsupported", fmt.Sprintf("the recorder cannot export its configuration (%v): installs go on without a backup (install.config_backup: best_effort)", err))
		return nil, nil
	case mode == config.BackupRequired:
		return nil, &deferral{code: CodeBackupFailed, msg: fmt.Sprintf("the configuration backup failed (%v), and install.config_backup is required: the install waits for a backup; fix the cause or set install.config_backup: best_effort", err)}
	}
	c.log.WithError(err).Warn("the configuration backup failed; installing without one (install.config_backup: best_effort)")
	return nil, nil
}

// BackupConfig exports the recorder's configuration into
// state_dir/backups as <serial>-<time>.cfg (mode 0600, written to a
// temporary file, renamed and fsynced, hashed while written), then deletes the
// oldest backups of that recorder beyond BackupsKept. A device that cannot
// export gives an error wrapping device.ErrNotSupported.
func (a *Agent) BackupConfig(ctx context.Context, id device.Identity) (*Backup, error) {
	exp, ok := a.Device.(device.ConfigExporter)
	if !ok {
		return nil, fmt.Errorf("%w: the %s device backend has no configuration export", device.ErrNotSupported, a.Config.Device.Backend)
	}
	dir := filepath.Join(a.Config.StateDir, BackupDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create the backup folder: %w", err)
	}
	serial := backupSerial(id)
	t := a.now().UTC()
	var path string
	for {
		path = filepath.Join(dir, serial+"-"+t.Format(backupTime)+backupExt)
		if _, err := os.Lstat(path); errors.Is(err, os.ErrNotExist) {
			break
		}
		t = t.Add(time.Millisecond)
	}
	// Streamed into a temporary file in the same folder, fsynced, renamed,
	// then the folder fsynced (as statefile does for the state files): a
	// failed or interrupted export leaves no backup, never half of one.
	pf, err := renameio.NewPendingFile(path, renameio.WithPermissions(0o600), renameio.WithTempDir(dir))
	if err != nil {
		return nil, fmt.Errorf("create the backup file: %w", err)
	}
	defer pf.Cleanup()
	h := sha256.New()
	n, err := exp.ExportConfig(ctx, io.MultiWriter(pf, h))
	if err != nil {
		return nil, err
	}
	if err := pf.CloseAtomicallyReplace(); err != nil {
		return nil, fmt.Errorf("store the backup file: %w", err)
	}
	if err := statefile.SyncDir(dir); err != nil {
		a.Log.WithError(err).Warn("could not fsync the backup folder")
	}
	b := &Backup{Path: path, Serial: serial, Time: t, Size: n, SHA256: hex.EncodeToString(h.Sum(nil))}
	a.pruneBackups(dir, serial)
	return b, nil
}

// pruneBackups deletes the oldest backups of serial beyond BackupsKept.
func (a *Agent) pruneBackups(dir, serial string) {
	list, err := listBackupFiles(dir)
	if err != nil {
		return
	}
	var mine []Backup
	for _, b := range list {
		if b.Serial == serial {
			mine = append(mine, b)
		}
	}
	for i := 0; i < len(mine)-BackupsKept; i++ {
		if err := os.Remove(mine[i].Path); err != nil {
			a.Log.WithError(err).Warn("could not delete an old configuration backup")
		}
	}
}

// ListBackups lists the configuration backups in stateDir, oldest first
// per recorder, with their size and SHA-256 (read from the files).
func ListBackups(stateDir string) ([]Backup, error) {
	list, err := listBackupFiles(filepath.Join(stateDir, BackupDir))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	for i := range list {
		sum, err := fileSHA256(list[i].Path)
		if err != nil {
			return nil, err
		}
		list[i].SHA256 = sum
	}
	return list, nil
}

// listBackupFiles lists the backups in dir by name: serial, then time.
func listBackupFiles(dir string) ([]Backup, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []Backup
	for _, e := range ents {
		name := e.Name()
		if !e.Type().IsRegular() || !strings.HasSuffix(name, backupExt) {
			continue
		}
		base := strings.TrimSuffix(name, backupExt)
		i := strings.LastIndex(base, "-")
		if i <= 0 {
			continue
		}
		t, err := time.Parse(backupTime, base[i+1:])
		if err != nil {
			continue
		}
		info, err := e.Info()
		if err != nil {
			continue
		}
		out = append(out, Backup{Path: filepath.Join(dir, name), Serial: base[:i], Time: t, Size: info.Size()})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Serial != out[j].Serial {
			return out[i].Serial < out[j].Serial
		}
		return out[i].Time.Before(out[j].Time)
	})
	return out, nil
}

// backupSerial is the recorder's name in backup file names: its serial (or
// MAC), reduced to letters, digits, '.' and '_'.
func backupSerial(id device.Identity) string {
	s := reportSerial(id)
	var b strings.Builder
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '_':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	if b.Len() > 64 {
		return b.String()[:64]
	}
	return b.String()
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
