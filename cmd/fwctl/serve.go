package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/fwagent/fwagent/internal/cli"
)

// serveHTTP serves h on ln (TLS when cert is set) until ctx ends, then
// shuts down gracefully so that requests in flight finish. what names the
// server in errors; rw bounds reading a request and writing its answer.
func serveHTTP(ctx context.Context, h http.Handler, ln net.Listener, cert, key, what string, rw time.Duration) error {
	hs := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       rw,
		WriteTimeout:      rw,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    16 << 10,
	}
	errc := make(chan error, 1)
	go func() {
		if cert != "" {
			errc <- hs.ServeTLS(ln, cert, key)
		} else {
			errc <- hs.Serve(ln)
		}
	}()
	select {
	case err := <-errc:
		return cli.Failure(fmt.Errorf("%s: serve: %w", what, err))
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		return cli.Failure(fmt.Errorf("shut down the %s: %w", what, err))
	}
	return nil
}
