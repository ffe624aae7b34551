// Package postgres is the fleet.Store on PostgreSQL, through pgx: for
// real fleets and for several `fwctl fleet serve` processes sharing one
// database (rows are locked per transaction). Migrations under
// migrations/ are applied at Open.
package postgres

import (
	"context"
	"embed"
	"fmt"
	"io/fs"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"

	"github.com/fwagent/fwagent/fleet/sqlstore"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Dialect is PostgreSQL's.
var Dialect = sqlstore.Dialect{Name: "postgres", Goose: goose.DialectPostgres, Dollar: true, ForUpdate: " FOR UPDATE", MaxParams: 65535, Arrays: true, NewSerialLocks: true}

// DefaultMaxConns is the pool size when Open is given 0: room for the
// server's check-in writers (2) next to holds, reports and admin reads
// (pgx's own default, 4 on a 2-core machine, left check-ins waiting for a
// connection behind the writers).
const DefaultMaxConns = 12

// Open connects to url (postgres://...), applies the migrations and
// returns the store. MaxConns bounds the pool (0: DefaultMaxConns).
func Open(ctx context.Context, url string, maxConns int32) (*sqlstore.Store, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("the PostgreSQL URL is not valid: %w", err)
	}
	if maxConns <= 0 {
		maxConns = DefaultMaxConns
	}
	cfg.MaxConns = maxConns
	// Plan every statement for its parameters. The batch read is one
	// prepared statement (serial = ANY($1)) per connection; PostgreSQL's
	// generic plan for it, chosen after five executions and often while
	// the table is still small, is a sequential scan of every device,
	// which at 100,000 devices cost more CPU than everything else the
	// database did for a check-in.
	if _, set := cfg.ConnConfig.RuntimeParams["plan_cache_mode"]; !set {
		cfg.ConnConfig.RuntimeParams["plan_cache_mode"] = "force_custom_plan"
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to PostgreSQL: %w", err)
	}
	db := stdlib.OpenDBFromPool(pool)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		pool.Close()
		return nil, fmt.Errorf("connect to PostgreSQL: %w", err)
	}
	sub, _ := fs.Sub(migrations, "migrations")
	s, err := sqlstore.Open(ctx, db, Dialect, sub)
	if err != nil {
		db.Close()
		pool.Close()
		return nil, err
	}
	return s, nil
}
