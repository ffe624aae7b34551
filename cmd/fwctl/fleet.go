package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/spf13/cobra"

	"github.com/fwagent/fwagent/fleet"
	"github.com/fwagent/fwagent/fleet/postgres"
	"github.com/fwagent/fwagent/fleet/server"
	"github.com/fwagent/fwagent/fleet/sqlite"
	"github.com/fwagent/fwagent/internal/cli"
)

// newFleetCmd groups the fleet server and the integrator's commands that
// talk to it.
func newFleetCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "fleet",
		Short: "Run the fleet server and manage the fleet through it (devices, enrolment, pauses)",
		Long: `The fleet server receives the agents' signed check-ins and reports, binds
each serial to its device key, shows every recorder's state, and can hold
a release (agents start no new install of it). See docs/fleet.md.`,
		Args: cli.ExactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return cli.Usage(errors.New("fwctl fleet needs a subcommand: serve, devices, approve, forget, pause, resume, rollout or import (see fwctl fleet --help)"))
		},
	}
	c.AddCommand(newFleetServeCmd(), newFleetDevicesCmd(), newFleetApproveCmd(), newFleetForgetCmd(), newFleetPauseCmd(true), newFleetPauseCmd(false),
		newFleetImportCmd(), newFleetRolloutCmd())
	return c
}

// DefaultFleetListen is where fleet serve listens by default: loopback.
const DefaultFleetListen = "127.0.0.1:8471"

func newFleetServeCmd() *cobra.Command {
	var (
		listen, db, enrolment, tokenFile, viewerFile, tlsCert, tlsKey, rate string
		minInstalls                                                         int
		insecure                                                            bool
		interval                                                            time.Duration
		limits                                                              = server.DefaultLimits()
		exempt                                                              []string
	)
	c := &cobra.Command{
		Use:   "serve [--listen ADDR] [--db URL] [--enrolment approve|open] [--admin-token-file F] [--max-failure-rate PCT --min-installs N] [--tls-cert F --tls-key F]",
		Short: "Run the fleet server: signed check-ins and reports, enrolment, holds, auto-pause, the web page",
		Long: `Serve the agents' API (POST /v1/checkin, /v1/report), the admin API
(/v1/admin/..., with the token in --admin-token-file; agents never hold it)
and a read-only web page at /. --viewer-token-file names a second token that
reads (the web page, fwctl fleet devices) and changes nothing: give it to
support, keep the admin token for pausing, approving and importing.

--db is a PostgreSQL URL (postgres://user@host/db, several servers may share
it) or a SQLite file (default fleet.db in the current directory; one server).
Migrations run at start.

--enrolment approve (default): an unknown device key waits as
pending_enrolment until fwctl fleet approve SERIAL. --enrolment open: the first
key that claims a serial owns it. A report or check-in for an enrolled serial
under another key is refused (403) and counted.

--max-failure-rate PCT with --min-installs N: pause a release on its own when
its current stage has at least N finished installs and more than PCT failed.
Resume is explicit (fwctl fleet resume).

Each source address may make --write-rate POST and PUT requests a second
(check-ins, reports, admin changes; --write-burst at once) and --read-rate
GETs (--read-burst at once), and send --auth-failures wrong admin or viewer
tokens a minute; past a limit it is answered 429 with Retry-After and
nothing is stored. An explicit 0 turns a limit off. --rate-exempt networks
are never limited (loopback by default). The source is the connection's
address: behind a proxy every agent shares the proxy's, so exempt the
proxy and let it limit (see docs/fleet.md). A request with the admin token
is never limited; a wrong token past --auth-failures is answered 429.

Without --tls-cert/--tls-key the server refuses to listen beyond loopback
unless --insecure-listen says so (the admin token and the inventory would
travel in clear). --insecure-listen beyond loopback needs --rate-exempt
too: the proxy's address, or '' to limit the proxy as one source (a proxy
on this host is exempt already). Runs until SIGINT or SIGTERM.`,
		Example: `  openssl rand -hex 32 > admin.token && chmod 600 admin.token
  fwctl fleet serve --admin-token-file admin.token --max-failure-rate 5% --min-installs 10
  fwctl fleet serve --listen 0.0.0.0:8471 --tls-cert fleet.crt --tls-key fleet.key \
    --db postgres://fleet@db.example/fleet --admin-token-file admin.token`,
		Args: cli.ExactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if (tlsCert == "") != (tlsKey == "") {
				return cli.Usage(errors.New("--tls-cert and --tls-key go together"))
			}
			if tlsCert == "" && !insecure {
				if err := checkLoopback(listen); err != nil {
					return cli.Usage(err)
				}
			}
			if insecure && tlsCert == "" && checkLoopback(listen) != nil && !cmd.Flags().Changed("rate-exempt") {
				return cli.Usage(errors.New("--insecure-listen needs --rate-exempt: behind a TLS proxy every request comes from the proxy's address, " +
					"so all agents would share one source's limits; give --rate-exempt PROXY-ADDRESS and let the proxy limit each client " +
					"(see docs/fleet.md, \"Behind a proxy or load balancer\"), or --rate-exempt '' to limit the proxy as one source"))
			}
			var err error
			if limits.Exempt, err = parseNetworks(exempt); err != nil {
				return cli.Usage(fmt.Errorf("--rate-exempt: %w", err))
			}
			opt := server.Options{Enrolment: enrolment, MinInstalls: minInstalls, CheckInInterval: interval, Limits: limits}
			if rate != "" {
				pct, err := parsePercent(rate)
				if err != nil {
					return cli.Usage(fmt.Errorf("--max-failure-rate: %w", err))
				}
				opt.MaxFailureRate = pct / 100
			}
			if tokenFile != "" {
				if opt.AdminToken, err = readServerToken(cmd, "admin", tokenFile); err != nil {
					return err
				}
			} else {
				fmt.Fprintln(cmd.ErrOrStderr(), "no --admin-token-file: the admin API (devices, approve, pause, resume, import) is off")
			}
			if viewerFile != "" {
				if opt.ViewerToken, err = readServerToken(cmd, "viewer", viewerFile); err != nil {
					return err
				}
			}
			log := logrus.New()
			log.Out = cmd.ErrOrStderr()
			log.Formatter = &logrus.TextFormatter{DisableColors: true, FullTimestamp: true}
			opt.Logger = log
			store, err := openFleetStore(cmd.Context(), db)
			if err != nil {
				return cli.Failure(err)
			}
			defer store.Close()
			if !isPostgres(db) {
				// SQLite has one writer (one connection): one batch
				// writer that takes everything queued commits least often.
				opt.Writers, opt.MaxBatch = 1, 1000
			}
			srv, err := server.New(store, opt)
			if err != nil {
				return cli.Usage(err)
			}
			defer srv.Close()
			ln, err := net.Listen("tcp", listen)
			if err != nil {
				return cli.Failure(fmt.Errorf("listen on %s: %w", listen, err))
			}
			return serveFleet(cmd.Context(), cmd, srv.Handler(), ln, tlsCert, tlsKey)
		},
	}
	c.Flags().StringVar(&listen, "listen", DefaultFleetListen, "address to listen on")
	c.Flags().StringVar(&db, "db", "fleet.db", "PostgreSQL URL (postgres://...) or SQLite file")
	c.Flags().StringVar(&enrolment, "enrolment", server.EnrolApprove, "approve (unknown keys wait for fwctl fleet approve) or open (first key wins)")
	c.Flags().StringVar(&tokenFile, "admin-token-file", "", "file holding the admin API's bearer token (never given to agents)")
	c.Flags().StringVar(&viewerFile, "viewer-token-file", "", "file holding a read-only token: the web page and the admin API's reads, no changes (for support)")
	c.Flags().StringVar(&rate, "max-failure-rate", "", `auto-pause a release when its current stage's failure rate is above this, like "5%" (default: off)`)
	c.Flags().IntVar(&minInstalls, "min-installs", 5, "finished installs a stage needs before --max-failure-rate applies")
	c.Flags().StringVar(&tlsCert, "tls-cert", "", "serve HTTPS with this certificate (PEM)")
	c.Flags().StringVar(&tlsKey, "tls-key", "", "private key of --tls-cert (PEM)")
	c.Flags().BoolVar(&insecure, "insecure-listen", false, "allow a non-loopback --listen without TLS (behind a TLS proxy only)")
	c.Flags().DurationVar(&interval, "checkin-interval", 0, "interval to ask agents to check in at (default: each agent's fleet.checkin_interval)")
	c.Flags().Float64Var(&limits.WriteRate, "write-rate", limits.WriteRate, "POST and PUT requests a second one source address may sustain (check-ins, reports, admin changes); 0: no limit")
	c.Flags().IntVar(&limits.WriteBurst, "write-burst", limits.WriteBurst, "POST and PUT requests one source address may make at once, refilled at --write-rate (a site's recorders checking in together)")
	c.Flags().Float64Var(&limits.ReadRate, "read-rate", limits.ReadRate, "GET requests a second one source address may sustain (the admin API's reads, the web page, /healthz); 0: no limit")
	c.Flags().IntVar(&limits.ReadBurst, "read-burst", limits.ReadBurst, "GET requests one source address may make at once, refilled at --read-rate")
	c.Flags().IntVar(&limits.AuthFailures, "auth-failures", limits.AuthFailures, "wrong admin or viewer tokens one source address may send a minute (as many at once); past them its wrong tokens get 429, a right one still passes; 0: no limit")
	c.Flags().StringSliceVar(&exempt, "rate-exempt", prefixStrings(limits.Exempt), "source networks (CIDR, or one address) never limited: this host, a trusted proxy; '' exempts none (required with --insecure-listen beyond loopback)")
	return c
}

// parseNetworks parses CIDR networks or single addresses (a /32 or /128).
func parseNetworks(list []string) ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(list))
	for _, s := range list {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("%q is neither a network like 192.0.2.0/24 or 2001:db8::/48 nor an address", s)
		}
		a = a.Unmap()
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

// prefixStrings writes networks as parseNetworks reads them.
func prefixStrings(ps []netip.Prefix) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.String()
	}
	return out
}

// readToken reads a bearer token (surrounding white space trimmed) and
// warns when the file is readable by others.
func readToken(cmd *cobra.Command, path string) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", cli.Failure(fmt.Errorf("read the token file: %w", err))
	}
	if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
		fmt.Fprintf(cmd.ErrOrStderr(), "warning: %s is readable by other users (mode %v): chmod 600 it\n", path, fi.Mode().Perm())
	}
	return strings.TrimSpace(string(data)), nil
}

// readServerToken reads the server's admin or viewer token from path and
// refuses a short one.
func readServerToken(cmd *cobra.Command, what, path string) (string, error) {
	tok, err := readToken(cmd, path)
	if err != nil {
		return "", err
	}
	if len(tok) < 16 {
		return "", cli.Usage(fmt.Errorf("the %s token in %s is %d bytes long, use at least 16 (for example `openssl rand -hex 32`)", what, path, len(tok)))
	}
	return tok, nil
}

// checkLoopback refuses a listen address beyond loopback.
func checkLoopback(listen string) error {
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return fmt.Errorf("--listen %q: want HOST:PORT: %w", listen, err)
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("--listen %s is not a loopback address and there is no TLS: give --tls-cert and --tls-key, or --insecure-listen if a TLS proxy is in front", listen)
}

// openFleetStore opens PostgreSQL for a postgres:// URL, else SQLite.
func openFleetStore(ctx context.Context, db string) (fleet.Store, error) {
	if isPostgres(db) {
		return postgres.Open(ctx, db, 0)
	}
	return sqlite.Open(ctx, strings.TrimPrefix(db, "sqlite://"))
}

// serveFleet serves h on ln until ctx ends, then shuts down gracefully.
func serveFleet(ctx context.Context, cmd *cobra.Command, h http.Handler, ln net.Listener, cert, key string) error {
	scheme := "http"
	if cert != "" {
		scheme = "https"
	}
	fmt.Fprintf(cmd.OutOrStdout(), "fleet server at %s://%s\n", scheme, ln.Addr())
	fmt.Fprintln(cmd.ErrOrStderr(), "set the agents' fleet.url to that URL (with this host's name); the web page is at /")
	if err := serveHTTP(ctx, h, ln, cert, key, "fleet server", 60*time.Second); err != nil {
		return err
	}
	fmt.Fprintln(cmd.ErrOrStderr(), "fleet server stopped")
	return nil
}

// isPostgres tells a PostgreSQL URL from a SQLite file.
func isPostgres(db string) bool {
	return strings.HasPrefix(db, "postgres://") || strings.HasPrefix(db, "postgresql://")
}
