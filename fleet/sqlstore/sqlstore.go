// Package sqlstore is the fleet.Store both real databases share: plain SQL
// over database/sql, with the few differences between PostgreSQL and
// SQLite (placeholders, row locks) in a Dialect. fleet/postgres and
// fleet/sqlite open the database, apply their own migrations and wrap it.
//
// Times are stored as microseconds since the Unix epoch (0: never), so
// both databases compare them the same way.
package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"

	"github.com/fwagent/fwagent/fleet"
	"github.com/fwagent/fwagent/manifest"
)

// Dialect is what differs between the databases.
type Dialect struct {
	Name      string        // "postgres" or "sqlite"
	Goose     goose.Dialect // for the migrations
	Dollar    bool          // placeholders are $1, $2 ... instead of ?
	ForUpdate string        // suffix that locks selected rows ("" where a transaction locks the database)
	MaxParams int           // bound parameters per statement
	// Arrays: the driver binds Go slices as SQL arrays (PostgreSQL through
	// pgx), so batch reads and writes are one fixed statement
	// (= ANY($1), unnest) that is prepared once per connection, whatever
	// the batch size.
	Arrays bool
	// NewSerialLocks: DevicesForUpdate takes an advisory lock on each
	// serial without a row (PostgreSQL, with Arrays), which FOR UPDATE
	// cannot lock; see lockNewSerials. Where a transaction locks the
	// database (SQLite) nothing is needed.
	NewSerialLocks bool
	// ConnLost reports whether err says a statement failed only because
	// its connection was lost: the server ended the session (it shut down
	// or restarted, or an administrator ended it) or the connection was
	// closed or broke. A transaction that met such an error before its
	// COMMIT was sent did not commit. Unsent reports whether err says the
	// statement never left this process. Both nil: never (SQLite, whose
	// connections are a file). See Update.
	ConnLost, Unsent func(error) bool
}

// Store is a fleet.Store over database/sql.
type Store struct {
	db *sql.DB // transactions
	rd *sql.DB // reads outside a transaction (db unless SetReader)
	d  Dialect
}

var _ fleet.Store = (*Store)(nil)

// Open wraps db, applying the migrations in fsys first (in their own
// session lock on PostgreSQL, so servers starting together migrate once).
func Open(ctx context.Context, db *sql.DB, d Dialect, fsys fs.FS) (*Store, error) {
	var opts []goose.ProviderOption
	if d.Goose == goose.DialectPostgres {
		l, err := lock.NewPostgresSessionLocker()
		if err != nil {
			return nil, err
		}
		opts = append(opts, goose.WithSessionLocker(l))
	}
	p, err := goose.NewProvider(d.Goose, db, fsys, opts...)
	if err != nil {
		return nil, fmt.Errorf("load the fleet database migrations: %w", err)
	}
	if _, err := p.Up(ctx); err != nil {
		return nil, fmt.Errorf("migrate the fleet database: %w", err)
	}
	return &Store{db: db, rd: db, d: d}, nil
}

// SetReader sends the reads made outside a transaction (lists, reports,
// counters, holds) to rd, which Close closes too. SQLite uses it: its
// writes go through one connection, and a long read (every report of a
// release, for an auto-pause check) on that connection would hold every
// check-in behind it; in WAL mode readers on other connections wait for
// nobody.
func (s *Store) SetReader(rd *sql.DB) { s.rd = rd }

// DB returns the database handle (benchmarks, tests).
func (s *Store) DB() *sql.DB { return s.db }

// Close closes the database.
func (s *Store) Close() error {
	err := s.db.Close()
	if s.rd != s.db {
		if rerr := s.rd.Close(); err == nil {
			err = rerr
		}
	}
	return err
}

// Ping checks the database answers (once more on a live connection if
// the first try met a lost one, as a read).
func (s *Store) Ping(ctx context.Context) error {
	return s.read(ctx, func(ctx context.Context) error { return s.db.PingContext(ctx) })
}

// q rewrites ? placeholders for the dialect.
func (s *Store) q(query string) string {
	if !s.d.Dollar {
		return query
	}
	var b strings.Builder
	b.Grow(len(query) + 16)
	n := 0
	for i := 0; i < len(query); i++ {
		if query[i] == '?' {
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteByte(query[i])
	}
	return b.String()
}

func us(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMicro()
}

func fromUS(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMicro(v).UTC()
}

func placeholders(rows, cols int) string {
	one := "(" + strings.TrimSuffix(strings.Repeat("?,", cols), ",") + ")"
	return strings.TrimSuffix(strings.Repeat(one+",", rows), ",")
}

type txn struct {
	s  *Store
	tx *sql.Tx
}

const deviceCols = "serial, enrolment, pubkey, key_id, model, firmware, device_name, site, step, release_id, progress, last_result, last_code, last_release_id, queue_depth, agent_version, manifest_serial, groups, interval_seconds, checkin_seq, report_seq, first_seen, last_seen, stale_after, stored"

const nDeviceCols = 25

type scanner interface{ Scan(...any) error }

func scanDevice(r scanner) (*fleet.Device, error) {
	var (
		d                                   fleet.Device
		groups                              string
		ms, ciseq, rseq, first, last, stale int64
		stored                              string
	)
	if err := r.Scan(&d.Serial, &d.Enrolment, &d.PubKey, &d.KeyID, &d.Model, &d.Firmware, &d.DeviceName, &d.Site,
		&d.Step, &d.ReleaseID, &d.Progress, &d.LastResult, &d.LastCode, &d.LastReleaseID, &d.QueueDepth,
		&d.AgentVersion, &ms, &groups, &d.IntervalSeconds, &ciseq, &rseq, &first, &last, &stale, &stored); err != nil {
		return nil, err
	}
	if groups != "" {
		_ = json.Unmarshal([]byte(groups), &d.Groups)
	}
	if len(d.PubKey) == 0 {
		d.PubKey = nil
	}
	d.ManifestSerial, d.CheckInSeq, d.ReportSeq = uint64(ms), uint64(ciseq), uint64(rseq)
	d.FirstSeen, d.LastSeen, d.StaleAfter = fromUS(first), fromUS(last), fromUS(stale)
	d.Stored = fleet.State(stored)
	return &d, nil
}

func deviceArgs(d *fleet.Device) []any {
	groups := ""
	if len(d.Groups) > 0 {
		b, _ := json.Marshal(d.Groups)
		groups = string(b)
	}
	pub := d.PubKey
	if pub == nil {
		pub = []byte{}
	}
	return []any{d.Serial, d.Enrolment, pub, d.KeyID, d.Model, d.Firmware, d.DeviceName, d.Site,
		d.Step, d.ReleaseID, d.Progress, d.LastResult, d.LastCode, d.LastReleaseID, d.QueueDepth,
		d.AgentVersion, int64(d.ManifestSerial), groups, d.IntervalSeconds, int64(d.CheckInSeq), int64(d.ReportSeq),
		us(d.FirstSeen), us(d.LastSeen), us(d.StaleAfter), string(d.Stored)}
}

func (t *txn) DevicesForUpdate(ctx context.Context, serials []string) (map[string]*fleet.Device, error) {
	out := make(map[string]*fleet.Device, len(serials))
	if t.s.d.Arrays {
		if t.s.d.NewSerialLocks {
			if err := t.lockNewSerials(ctx, serials); err != nil {
				return nil, err
			}
		}
		q := "SELECT " + deviceCols + " FROM devices WHERE serial = ANY($1) ORDER BY serial" + t.s.d.ForUpdate
		rows, err := t.tx.QueryContext(ctx, q, serials)
		if err != nil {
			return nil, fmt.Errorf("read devices: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			d, err := scanDevice(rows)
			if err != nil {
				return nil, fmt.Errorf("read devices: %w", err)
			}
			out[d.Serial] = d
		}
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("read devices: %w", err)
		}
		return out, nil
	}
	const chunk = 1000
	for len(serials) > 0 {
		n := min(chunk, len(serials))
		part := serials[:n]
		serials = serials[n:]
		args := make([]any, len(part))
		for i, s := range part {
			args[i] = s
		}
		q := "SELECT " + deviceCols + " FROM devices WHERE serial IN (" + strings.TrimSuffix(strings.Repeat("?,", n), ",") + ") ORDER BY serial" + t.s.d.ForUpdate
		rows, err := t.tx.QueryContext(ctx, t.s.q(q), args...)
		if err != nil {
			return nil, fmt.Errorf("read devices: %w", err)
		}
		for rows.Next() {
			d, err := scanDevice(rows)
			if err != nil {
				rows.Close()
				return nil, fmt.Errorf("read devices: %w", err)
			}
			out[d.Serial] = d
		}
		if err := rows.Close(); err != nil {
			return nil, err
		}
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("read devices: %w", err)
		}
	}
	return out, nil
}

var deviceUpsertSet = func() string {
	cols := strings.Split(deviceCols, ", ")
	sets := make([]string, 0, len(cols)-1)
	for _, c := range cols[1:] {
		sets = append(sets, c+" = excluded."+c)
	}
	return strings.Join(sets, ", ")
}()

// deviceArrayTypes are the PostgreSQL array types of deviceCols, in order.
var deviceArrayTypes = []string{"text", "text", "bytea", "text", "text", "text", "text", "text",
	"text", "text", "int8", "text", "text", "text", "int8",
	"text", "int8", "text", "int8", "int8", "int8",
	"int8", "int8", "int8", "text"}

// putDevicesArrays upserts every device in one statement: one array per
// column, unnest()ed into rows.
func (t *txn) putDevicesArrays(ctx context.Context, ds []*fleet.Device) error {
	cols := make([][]any, nDeviceCols)
	for i := range cols {
		cols[i] = make([]any, 0, len(ds))
	}
	for _, d := range ds {
		for i, v := range deviceArgs(d) {
			cols[i] = append(cols[i], v)
		}
	}
	args := make([]any, nDeviceCols)
	params := make([]string, nDeviceCols)
	for i, typ := range deviceArrayTypes {
		args[i] = typedArray(typ, cols[i])
		params[i] = "$" + strconv.Itoa(i+1) + "::" + typ + "[]"
	}
	q := "INSERT INTO devices (" + deviceCols + ") SELECT * FROM unnest(" + strings.Join(params, ", ") +
		") ON CONFLICT (serial) DO UPDATE SET " + deviceUpsertSet
	if _, err := t.tx.ExecContext(ctx, q, args...); err != nil {
		return fmt.Errorf("store devices: %w", err)
	}
	return nil
}

// typedArray turns a column of values into the Go slice pgx binds as an
// array of typ.
func typedArray(typ string, vs []any) any {
	switch typ {
	case "text":
		out := make([]string, len(vs))
		for i, v := range vs {
			switch x := v.(type) {
			case string:
				out[i] = x
			case fleet.State:
				out[i] = string(x)
			default:
				out[i] = fmt.Sprint(x)
			}
		}
		return out
	case "bytea":
		out := make([][]byte, len(vs))
		for i, v := range vs {
			out[i] = v.([]byte)
		}
		return out
	default:
		out := make([]int64, len(vs))
		for i, v := range vs {
			switch x := v.(type) {
			case int:
				out[i] = int64(x)
			case int64:
				out[i] = x
			case uint64:
				out[i] = int64(x)
			}
		}
		return out
	}
}

// PutDevices upserts ds in serial order, whatever the caller's: two
// transactions writing the same rows then lock them in one order and
// cannot deadlock.
func (t *txn) PutDevices(ctx context.Context, ds []*fleet.Device) error {
	if len(ds) == 0 {
		return nil
	}
	bySerial := func(a, b *fleet.Device) int { return strings.Compare(a.Serial, b.Serial) }
	if !slices.IsSortedFunc(ds, bySerial) {
		ds = slices.Clone(ds)
		slices.SortFunc(ds, bySerial)
	}
	if t.s.d.Arrays {
		return t.putDevicesArrays(ctx, ds)
	}
	per := max(1, t.s.d.MaxParams/nDeviceCols)
	for len(ds) > 0 {
		n := min(per, len(ds))
		args := make([]any, 0, n*nDeviceCols)
		for _, d := range ds[:n] {
			args = append(args, deviceArgs(d)...)
		}
		q := "INSERT INTO devices (" + deviceCols + ") VALUES " + placeholders(n, nDeviceCols) +
			" ON CONFLICT (serial) DO UPDATE SET " + deviceUpsertSet
		if _, err := t.tx.ExecContext(ctx, t.s.q(q), args...); err != nil {
			return fmt.Errorf("store devices: %w", err)
		}
		ds = ds[n:]
	}
	return nil
}

func (t *txn) AddReports(ctx context.Context, rs []fleet.ReportRecord) error {
	_, err := t.insertReports(ctx, rs, "")
	return err
}

// importedOnce is the conflict clause of an import: a report whose id an
// import stored already is skipped. It names the unique index
// reports_imported (migration 00002) by its columns and predicate, which
// both databases require of a partial index.
const importedOnce = " ON CONFLICT (report_id) WHERE key_id = '" + fleet.ImportKeyID + "' DO NOTHING"

// ImportReports stores imported reports under fleet.ImportKeyID, each
// report id once (the unique index reports_imported): the database
// decides, so two imports of one file at once, on two servers, store it
// once too.
func (t *txn) ImportReports(ctx context.Context, rs []fleet.ReportRecord) (int, error) {
	imported := make([]fleet.ReportRecord, len(rs))
	for i, r := range rs {
		r.KeyID = fleet.ImportKeyID
		imported[i] = r
	}
	n, err := t.insertReports(ctx, imported, importedOnce)
	return int(n), err
}

// insertReports inserts rs, each INSERT ending with conflict, and returns
// how many rows it inserted.
func (t *txn) insertReports(ctx context.Context, rs []fleet.ReportRecord, conflict string) (int64, error) {
	if len(rs) == 0 {
		return 0, nil
	}
	if t.s.d.Arrays {
		return t.insertReportsArrays(ctx, rs, conflict)
	}
	const cols = 8
	per := max(1, t.s.d.MaxParams/cols)
	var stored int64
	for len(rs) > 0 {
		n := min(per, len(rs))
		args := make([]any, 0, n*cols)
		for _, r := range rs[:n] {
			body, err := reportBody(r)
			if err != nil {
				return 0, err
			}
			args = append(args, us(r.Received), r.Report.DeviceSerial, r.Report.ReleaseID, int64(r.Report.Seq), r.Report.ID, r.KeyID, r.Report.Result, body)
		}
		q := "INSERT INTO reports (" + reportCols + ") VALUES " + placeholders(n, cols) + conflict
		res, err := t.tx.ExecContext(ctx, t.s.q(q), args...)
		if err != nil {
			return 0, fmt.Errorf("store reports: %w", err)
		}
		added, err := res.RowsAffected()
		if err != nil {
			return 0, fmt.Errorf("store reports: %w", err)
		}
		stored += added
		rs = rs[n:]
	}
	return stored, nil
}

const reportCols = "received, serial, release_id, seq, report_id, key_id, result, body"

// reportBody is what the body column keeps of r: its Body when the caller
// encoded the report already, else the report encoded here.
func reportBody(r fleet.ReportRecord) (string, error) {
	if r.Body != nil {
		return string(r.Body), nil
	}
	b, err := json.Marshal(r.Report)
	return string(b), err
}

// insertReportsArrays inserts every report in one fixed statement (one per
// conflict clause): one array per column, unnest()ed into rows.
func (t *txn) insertReportsArrays(ctx context.Context, rs []fleet.ReportRecord, conflict string) (int64, error) {
	received, seq := make([]int64, len(rs)), make([]int64, len(rs))
	serial, release, id, key, result, body := make([]string, len(rs)), make([]string, len(rs)), make([]string, len(rs)), make([]string, len(rs)), make([]string, len(rs)), make([]string, len(rs))
	for i, r := range rs {
		b, err := reportBody(r)
		if err != nil {
			return 0, err
		}
		received[i], serial[i], release[i], seq[i] = us(r.Received), r.Report.DeviceSerial, r.Report.ReleaseID, int64(r.Report.Seq)
		id[i], key[i], result[i], body[i] = r.Report.ID, r.KeyID, r.Report.Result, b
	}
	q := "INSERT INTO reports (" + reportCols + ") SELECT * FROM unnest($1::int8[], $2::text[], $3::text[], $4::int8[], $5::text[], $6::text[], $7::text[], $8::text[])" + conflict
	res, err := t.tx.ExecContext(ctx, q, received, serial, release, seq, id, key, result, body)
	if err != nil {
		return 0, fmt.Errorf("store reports: %w", err)
	}
	stored, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("store reports: %w", err)
	}
	return stored, nil
}

func (t *txn) AddEvents(ctx context.Context, es []fleet.Event) error {
	if len(es) == 0 {
		return nil
	}
	if t.s.d.Arrays {
		at := make([]int64, len(es))
		serial, kind, detail := make([]string, len(es)), make([]string, len(es)), make([]string, len(es))
		for i, e := range es {
			at[i], serial[i], kind[i], detail[i] = us(e.At), e.Serial, e.Kind, e.Detail
		}
		q := "INSERT INTO events (at, serial, kind, detail) SELECT * FROM unnest($1::int8[], $2::text[], $3::text[], $4::text[])"
		if _, err := t.tx.ExecContext(ctx, q, at, serial, kind, detail); err != nil {
			return fmt.Errorf("store events: %w", err)
		}
		return nil
	}
	const cols = 4
	per := max(1, t.s.d.MaxParams/cols)
	for len(es) > 0 {
		n := min(per, len(es))
		args := make([]any, 0, n*cols)
		for _, e := range es[:n] {
			args = append(args, us(e.At), e.Serial, e.Kind, e.Detail)
		}
		q := "INSERT INTO events (at, serial, kind, detail) VALUES " + placeholders(n, cols)
		if _, err := t.tx.ExecContext(ctx, t.s.q(q), args...); err != nil {
			return fmt.Errorf("store events: %w", err)
		}
		es = es[n:]
	}
	return nil
}

// AddCounters adds to the counters in name order: two transactions that
// count the same names (forgeries and replays) then lock their rows in
// one order and cannot deadlock.
func (t *txn) AddCounters(ctx context.Context, delta map[string]int64) error {
	for _, name := range slices.Sorted(maps.Keys(delta)) {
		v := delta[name]
		if v == 0 {
			continue
		}
		q := "INSERT INTO counters (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = counters.value + excluded.value"
		if _, err := t.tx.ExecContext(ctx, t.s.q(q), name, v); err != nil {
			return fmt.Errorf("count %s: %w", name, err)
		}
	}
	return nil
}

const releaseCols = "id, rollout, paused, paused_at, paused_by, pause_cause"

func scanRelease(r scanner) (fleet.Release, error) {
	var (
		rel     fleet.Release
		rollout string
		paused  int
		at      int64
	)
	if err := r.Scan(&rel.ID, &rollout, &paused, &at, &rel.PausedBy, &rel.PauseCause); err != nil {
		return rel, err
	}
	if rollout != "" {
		var ro manifest.Rollout
		if err := json.Unmarshal([]byte(rollout), &ro); err == nil {
			rel.Rollout = &ro
		}
	}
	rel.Paused, rel.PausedAt = paused != 0, fromUS(at)
	return rel, nil
}

func (t *txn) ReleaseForUpdate(ctx context.Context, id string) (fleet.Release, error) {
	row := t.tx.QueryRowContext(ctx, t.s.q("SELECT "+releaseCols+" FROM releases WHERE id = ?"+t.s.d.ForUpdate), id)
	rel, err := scanRelease(row)
	if errors.Is(err, sql.ErrNoRows) {
		return rel, fmt.Errorf("release %q: %w", id, fleet.ErrNotFound)
	}
	return rel, err
}

func (t *txn) PutRelease(ctx context.Context, r fleet.Release) error {
	rollout := ""
	if r.Rollout != nil {
		b, err := json.Marshal(r.Rollout)
		if err != nil {
			return err
		}
		rollout = string(b)
	}
	paused := 0
	if r.Paused {
		paused = 1
	}
	q := "INSERT INTO releases (" + releaseCols + ") VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET rollout = excluded.rollout, paused = excluded.paused, paused_at = excluded.paused_at, paused_by = excluded.paused_by, pause_cause = excluded.pause_cause"
	if _, err := t.tx.ExecContext(ctx, t.s.q(q), r.ID, rollout, paused, us(r.PausedAt), r.PausedBy, r.PauseCause); err != nil {
		return fmt.Errorf("store release %s: %w", r.ID, err)
	}
	return nil
}

func (t *txn) AddPause(ctx context.Context, p fleet.PauseEvent) error {
	paused := 0
	if p.Paused {
		paused = 1
	}
	q := "INSERT INTO pauses (at, release_id, paused, actor, cause) VALUES (?, ?, ?, ?, ?)"
	if _, err := t.tx.ExecContext(ctx, t.s.q(q), us(p.At), p.ReleaseID, paused, p.Actor, p.Cause); err != nil {
		return fmt.Errorf("log the pause of %s: %w", p.ReleaseID, err)
	}
	return nil
}
