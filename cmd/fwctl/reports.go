package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/spf13/cobra"

	"github.com/fwagent/fwagent/internal/cli"
	"github.com/fwagent/fwagent/reports"
)

// newReportsCmd groups the commands that handle the agents' reports.
func newReportsCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "reports",
		Short: "Receive the agents' reports",
		Args:  cli.ExactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return cli.Usage(errors.New("fwctl reports needs a subcommand: serve (see fwctl reports --help)"))
		},
	}
	c.AddCommand(newReportsServeCmd())
	return c
}

func newReportsServeCmd() *cobra.Command {
	var (
		listen, tokenFile, out, tlsCert, tlsKey string
		maxBody                                 int64
	)
	c := &cobra.Command{
		Use:   "serve --listen ADDR --token-file FILE --out FILE.jsonl",
		Short: "Receive the agents' reports and append them to a JSON Lines file",
		Long: `Receive reports on POST /v1/reports (the agents' report.url is
http://ADDR/v1/reports, or https:// with --tls-cert and --tls-key) with the
bearer token held in --token-file (the agents' report.token). Each accepted
report is appended to --out as one line and fsynced before the agent gets its
2xx, so an accepted report survives a crash. Bodies above --max-body get 413,
invalid reports 400 with the reason, a wrong token 401. GET /healthz answers
200 while reports can be written. Runs until SIGINT or SIGTERM.

Legacy: every agent holds the same token here, so anyone with it can post a
report for any serial. The fleet server (fwctl fleet serve, docs/fleet.md)
takes reports signed by each device's own key; bring this file's reports
into it with fwctl fleet import. This command stays for agents not yet
configured with fleet.url.`,
		Example: `  openssl rand -hex 32 > reports.token && chmod 600 reports.token
  fwctl reports serve --listen 0.0.0.0:8470 --token-file reports.token --out reports.jsonl`,
		Args: cli.ExactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if tokenFile == "" || out == "" {
				return cli.Usage(errors.New("--token-file FILE and --out FILE.jsonl are required"))
			}
			if (tlsCert == "") != (tlsKey == "") {
				return cli.Usage(errors.New("--tls-cert and --tls-key go together"))
			}
			token, err := readToken(cmd, tokenFile)
			if err != nil {
				return err
			}
			log := logrus.New()
			log.Out = cmd.ErrOrStderr()
			log.Formatter = &logrus.TextFormatter{DisableColors: true, FullTimestamp: true}
			srv, err := reports.NewServer(out, reports.ServerOptions{Token: token, MaxBody: maxBody, Logger: log})
			if err != nil {
				return cli.Failure(err)
			}
			defer srv.Close()
			return serveReports(cmd.Context(), cmd, srv, listen, tlsCert, tlsKey, out)
		},
	}
	c.Flags().StringVar(&listen, "listen", "127.0.0.1:8470", "address to listen on (0.0.0.0:8470 for every interface)")
	c.Flags().StringVar(&tokenFile, "token-file", "", "file holding the bearer token the agents send")
	c.Flags().StringVar(&out, "out", "", "JSON Lines file the reports are appended to")
	c.Flags().Int64Var(&maxBody, "max-body", reports.DefaultMaxBody, "largest report body in bytes")
	c.Flags().StringVar(&tlsCert, "tls-cert", "", "serve HTTPS with this certificate (PEM)")
	c.Flags().StringVar(&tlsKey, "tls-key", "", "private key of --tls-cert (PEM)")
	return c
}

// readToken reads the bearer token (surrounding white space trimmed) and
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

// serveReports listens, prints the URL agents must use, and serves until
// ctx ends, then shuts down gracefully (requests in flight finish).
func serveReports(ctx context.Context, cmd *cobra.Command, h http.Handler, listen, cert, key, out string) error {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return cli.Failure(fmt.Errorf("listen on %s: %w", listen, err))
	}
	scheme := "http"
	if cert != "" {
		scheme = "https"
	}
	fmt.Fprintf(cmd.OutOrStdout(), "receiving reports at %s://%s%s\n", scheme, ln.Addr(), reports.Path)
	fmt.Fprintf(cmd.ErrOrStderr(), "set the agents' report.url to that URL (with this host's name or address) and report.token to the token; appending to %s\n", out)
	if err := serveHTTP(ctx, h, ln, cert, key, "reports server", 30*time.Second); err != nil {
		return err
	}
	fmt.Fprintln(cmd.ErrOrStderr(), "stopped; every accepted report is in", out)
	return nil
}
