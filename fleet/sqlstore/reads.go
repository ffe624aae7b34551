package sqlstore

// The store's reads, outside any transaction, on the reader (SQLite's
// read-only connections, or PostgreSQL's pool), each retried once after a
// lost connection (read, query).

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/fwagent/fwagent/fleet"
)

// Device returns one device.
func (s *Store) Device(ctx context.Context, serial string) (fleet.Device, error) {
	var d *fleet.Device
	err := s.read(ctx, func(ctx context.Context) (err error) {
		d, err = scanDevice(s.rd.QueryRowContext(ctx, s.q("SELECT "+deviceCols+" FROM devices WHERE serial = ?"), serial))
		return err
	})
	if errors.Is(err, sql.ErrNoRows) {
		return fleet.Device{}, fmt.Errorf("device %q: %w", serial, fleet.ErrNotFound)
	}
	if err != nil {
		return fleet.Device{}, fmt.Errorf("read device %s: %w", serial, err)
	}
	return *d, nil
}

// activeStates are the stored states a device leaves for stale.
const activeStates = "('up_to_date', 'updating', 'failed', 'pending_image')"

// Devices lists devices matching f.
func (s *Store) Devices(ctx context.Context, f fleet.DeviceFilter) ([]fleet.Device, error) {
	var (
		where []string
		args  []any
	)
	now := us(f.Now)
	if f.Now.IsZero() {
		now = us(time.Now())
	}
	switch f.State {
	case "":
	case fleet.StateStale:
		where = append(where, "stored IN "+activeStates+" AND stale_after < ?")
		args = append(args, now)
	case fleet.StateUpToDate, fleet.StateUpdating, fleet.StateFailed, fleet.StatePendingImage:
		where = append(where, "stored = ? AND stale_after >= ?")
		args = append(args, string(f.State), now)
	default:
		where = append(where, "stored = ?")
		args = append(args, string(f.State))
	}
	if f.Model != "" {
		where = append(where, "model = ?")
		args = append(args, f.Model)
	}
	if f.ReleaseID != "" {
		where = append(where, "(release_id = ? OR last_release_id = ?)")
		args = append(args, f.ReleaseID, f.ReleaseID)
	}
	if f.Serial != "" {
		where = append(where, "serial = ?")
		args = append(args, f.Serial)
	}
	q := "SELECT " + deviceCols + " FROM devices"
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY serial"
	if f.Limit > 0 {
		q += " LIMIT " + strconv.Itoa(f.Limit)
	}
	rows, err := s.query(ctx, s.q(q), args...)
	if err != nil {
		return nil, fmt.Errorf("list devices: %w", err)
	}
	defer rows.Close()
	var out []fleet.Device
	for rows.Next() {
		d, err := scanDevice(rows)
		if err != nil {
			return nil, fmt.Errorf("list devices: %w", err)
		}
		out = append(out, *d)
	}
	return out, rows.Err()
}

// StateCounts counts devices by state at now.
func (s *Store) StateCounts(ctx context.Context, now time.Time) (map[fleet.State]int, error) {
	q := "SELECT stored, CASE WHEN stored IN " + activeStates + " AND stale_after < ? THEN 1 ELSE 0 END, COUNT(*) FROM devices GROUP BY 1, 2"
	rows, err := s.query(ctx, s.q(q), us(now))
	if err != nil {
		return nil, fmt.Errorf("count devices: %w", err)
	}
	defer rows.Close()
	out := map[fleet.State]int{}
	for rows.Next() {
		var (
			st       string
			stale, n int
		)
		if err := rows.Scan(&st, &stale, &n); err != nil {
			return nil, err
		}
		if stale == 1 {
			st = string(fleet.StateStale)
		}
		out[fleet.State(st)] += n
	}
	return out, rows.Err()
}

// Reports returns the accepted reports on a release in receive order.
func (s *Store) Reports(ctx context.Context, releaseID string) ([]fleet.ReportRecord, error) {
	rows, err := s.query(ctx, s.q("SELECT received, key_id, body FROM reports WHERE release_id = ? ORDER BY received, id"), releaseID)
	if err != nil {
		return nil, fmt.Errorf("read reports: %w", err)
	}
	defer rows.Close()
	var out []fleet.ReportRecord
	for rows.Next() {
		var (
			rec  fleet.ReportRecord
			at   int64
			body string
		)
		if err := rows.Scan(&at, &rec.KeyID, &body); err != nil {
			return nil, err
		}
		if err := json.Unmarshal([]byte(body), &rec.Report); err != nil {
			return nil, fmt.Errorf("a stored report does not decode: %w", err)
		}
		rec.Received = fromUS(at)
		out = append(out, rec)
	}
	return out, rows.Err()
}

// Events returns a device's history, newest first.
func (s *Store) Events(ctx context.Context, serial string, limit int) ([]fleet.Event, error) {
	if limit <= 0 {
		limit = 100
	}
	q := "SELECT at, serial, kind, detail FROM events"
	var args []any
	if serial != "" {
		q += " WHERE serial = ?"
		args = append(args, serial)
	}
	q += " ORDER BY id DESC LIMIT " + strconv.Itoa(limit)
	rows, err := s.query(ctx, s.q(q), args...)
	if err != nil {
		return nil, fmt.Errorf("read events: %w", err)
	}
	defer rows.Close()
	var out []fleet.Event
	for rows.Next() {
		var (
			e  fleet.Event
			at int64
		)
		if err := rows.Scan(&at, &e.Serial, &e.Kind, &e.Detail); err != nil {
			return nil, err
		}
		e.At = fromUS(at)
		out = append(out, e)
	}
	return out, rows.Err()
}

func (s *Store) releases(ctx context.Context, where string) ([]fleet.Release, error) {
	rows, err := s.query(ctx, "SELECT "+releaseCols+" FROM releases"+where+" ORDER BY id")
	if err != nil {
		return nil, fmt.Errorf("read releases: %w", err)
	}
	defer rows.Close()
	var out []fleet.Release
	for rows.Next() {
		r, err := scanRelease(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// Releases lists the known releases.
func (s *Store) Releases(ctx context.Context) ([]fleet.Release, error) { return s.releases(ctx, "") }

// ReportedReleases lists the release ids that accepted reports name.
func (s *Store) ReportedReleases(ctx context.Context) ([]string, error) {
	rows, err := s.query(ctx, "SELECT DISTINCT release_id FROM reports WHERE release_id <> '' ORDER BY release_id")
	if err != nil {
		return nil, fmt.Errorf("read reported releases: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		out = append(out, id)
	}
	return out, rows.Err()
}

// Held lists the paused releases.
func (s *Store) Held(ctx context.Context) ([]fleet.Release, error) {
	return s.releases(ctx, " WHERE paused = 1")
}

// Pauses returns the pause log, newest first.
func (s *Store) Pauses(ctx context.Context, releaseID string, limit int) ([]fleet.PauseEvent, error) {
	if limit <= 0 {
		limit = 100
	}
	q := "SELECT at, release_id, paused, actor, cause FROM pauses"
	var args []any
	if releaseID != "" {
		q += " WHERE release_id = ?"
		args = append(args, releaseID)
	}
	q += " ORDER BY id DESC LIMIT " + strconv.Itoa(limit)
	rows, err := s.query(ctx, s.q(q), args...)
	if err != nil {
		return nil, fmt.Errorf("read the pause log: %w", err)
	}
	defer rows.Close()
	var out []fleet.PauseEvent
	for rows.Next() {
		var (
			p      fleet.PauseEvent
			at     int64
			paused int
		)
		if err := rows.Scan(&at, &p.ReleaseID, &paused, &p.Actor, &p.Cause); err != nil {
			return nil, err
		}
		p.At, p.Paused = fromUS(at), paused != 0
		out = append(out, p)
	}
	return out, rows.Err()
}

// Counters returns every counter.
func (s *Store) Counters(ctx context.Context) (map[string]int64, error) {
	rows, err := s.query(ctx, "SELECT name, value FROM counters")
	if err != nil {
		return nil, fmt.Errorf("read counters: %w", err)
	}
	defer rows.Close()
	out := map[string]int64{}
	for rows.Next() {
		var (
			n string
			v int64
		)
		if err := rows.Scan(&n, &v); err != nil {
			return nil, err
		}
		out[n] = v
	}
	return out, rows.Err()
}
