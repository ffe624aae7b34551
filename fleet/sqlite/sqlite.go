// Package sqlite is the embedded fleet.Store: one SQLite file through the
// pure-Go modernc.org/sqlite, so a first fleet server needs no database
// server. One process owns the file (use PostgreSQL for several servers).
// Migrations under migrations/ are applied at Open.
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"
	"net/url"

	"github.com/pressly/goose/v3"
	_ "modernc.org/sqlite" // the database/sql driver "sqlite"

	"github.com/fwagent/fwagent/fleet/sqlstore"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Dialect is SQLite's: a write transaction locks the database.
var Dialect = sqlstore.Dialect{Name: "sqlite", Goose: goose.DialectSQLite3, MaxParams: 32766}

// Open opens (creating it) the database file at path, applies the
// migrations and returns the store.
func Open(ctx context.Context, path string) (*sqlstore.Store, error) {
	q := url.Values{}
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "busy_timeout(10000)")
	// FULL, not NORMAL: in WAL mode NORMAL may lose the last commits on a
	// power cut, and the server acknowledges a report only once it is
	// committed. Batching keeps the extra fsync per commit cheap.
	q.Add("_pragma", "synchronous(FULL)")
	q.Add("_pragma", "foreign_keys(ON)")
	q.Set("_txlock", "immediate")
	db, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("open the fleet database %s: %w", path, err)
	}
	// One connection: SQLite has one writer, and a transaction sees its
	// own writes without waiting on another connection's lock.
	db.SetMaxOpenConns(1)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("open the fleet database %s: %w", path, err)
	}
	sub, _ := fs.Sub(migrations, "migrations")
	s, err := sqlstore.Open(ctx, db, Dialect, sub)
	if err != nil {
		db.Close()
		return nil, err
	}
	// Reads outside a transaction on connections of their own (WAL:
	// they never wait for the writer, nor it for them), read-only.
	r := url.Values{}
	r.Add("_pragma", "busy_timeout(10000)")
	r.Add("_pragma", "query_only(1)")
	rd, err := sql.Open("sqlite", "file:"+path+"?"+r.Encode())
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("open the fleet database %s for reading: %w", path, err)
	}
	rd.SetMaxOpenConns(ReadConns)
	s.SetReader(rd)
	return s, nil
}

// ReadConns bounds the connections that read outside a transaction.
const ReadConns = 4
