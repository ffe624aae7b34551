// Package postgres is the fleet.Store on PostgreSQL, through pgx: for
// real fleets and for several `fwctl fleet serve` processes sharing one
// database (rows are locked per transaction). Migrations under
// migrations/ are applied at Open.
package postgres

import (
	"context"
	"database/sql/driver"
	"embed"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"

	"github.com/fwagent/fwagent/fleet/sqlstore"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Dialect is PostgreSQL's.
var Dialect = sqlstore.Dialect{Name: "postgres", Goose: goose.DialectPostgres, Dollar: true, ForUpdate: " FOR UPDATE", MaxParams: 65535, Arrays: true, NewSerialLocks: true,
	ConnLost: connLost, Unsent: pgconn.SafeToRetry}

// connLost reports whether err says the connection was lost: the server
// ended the session (57P01 admin_shutdown: a shutdown, a restart or
// pg_terminate_backend; 57P02 crash_shutdown; 57P03 cannot_connect_now:
// it is starting or stopping), the connection was already closed (pgx,
// database/sql) or it broke (end of stream, reset, closed socket). A
// context that ended is not a lost connection: pgx closes the connection
// then too, but the caller no longer waits.
func connLost(err error) bool {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code == "57P01" || pe.Code == "57P02" || pe.Code == "57P03"
	}
	for _, lost := range []error{pgconn.ErrConnClosed, driver.ErrBadConn, io.EOF, io.ErrUnexpectedEOF, net.ErrClosed, syscall.ECONNRESET, syscall.EPIPE} {
		if errors.Is(err, lost) {
			return true
		}
	}
	return false
}

// DefaultMaxConns is the pool size when Open is given 0: room for the
// server's check-in writers (2) next to holds, reports and admin reads
// (pgx's own default, 4 on a 2-core machine, left check-ins waiting for a
// connection behind the writers).
const DefaultMaxConns = 12

// pingIdle is pgxpool's own rule: a connection idle longer is pinged
// before it is handed out.
const pingIdle = time.Second

// Open connects to url (postgres://...), applies the migrations and
// returns the store. MaxConns bounds the pool (0: DefaultMaxConns).
func Open(ctx context.Context, url string, maxConns int32) (*sqlstore.Store, error) {
	return open(ctx, url, maxConns, pingIdle)
}

// open is Open with the idle time after which the pool pings a
// connection before handing it out (tests raise it, so that connections
// from before a restart reach the store).
func open(ctx context.Context, url string, maxConns int32, pingIdle time.Duration) (*sqlstore.Store, error) {
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
	// A connection idle for a while is pinged before it is handed out, as
	// pgxpool does by default; so is every connection a retry after a
	// lost connection gets (sqlstore.IsRetry), so that the retry does not
	// meet another connection from before a restart. Pinging every
	// connection would cost every transaction and read a round trip.
	cfg.ShouldPing = func(ctx context.Context, p pgxpool.ShouldPingParams) bool {
		return p.IdleDuration > pingIdle || sqlstore.IsRetry(ctx)
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
