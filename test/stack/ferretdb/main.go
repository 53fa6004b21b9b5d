// Command cdc-ferretdb runs FerretDB (a MongoDB-wire server) embedded as a library,
// for local tests of the cdc project. Used by test/stack/stack.sh.
//
// The upstream `go install .../cmd/ferretdb` binary panics at start when built outside
// its repository ("Invalid build/version/version.txt"), so we embed the library instead.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/FerretDB/FerretDB/ferretdb"
)

func env(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func main() {
	listen := flag.String("listen", env("CDC_FERRETDB_LISTEN", "127.0.0.1:27017"), "TCP address to listen on")
	handler := flag.String("handler", env("CDC_FERRETDB_HANDLER", "sqlite"), "backend handler: sqlite or postgresql")
	dir := flag.String("dir", env("CDC_FERRETDB_DIR", ""), "SQLite data directory (sqlite handler)")
	pgURL := flag.String("postgresql-url", env("CDC_FERRETDB_POSTGRESQL_URL", ""), "PostgreSQL URL (postgresql handler)")
	logLevel := flag.String("log-level", env("CDC_FERRETDB_LOG_LEVEL", "info"), "log level: debug, info, warn, error")
	// FerretDB's own TLS listener (test/ops/tls.test.ts starts one with certificates it makes).
	listenTLS := flag.String("listen-tls", "", "TCP address of the TLS listener (empty: none)")
	tlsCert := flag.String("listen-tls-cert-file", "", "PEM server certificate of the TLS listener")
	tlsKey := flag.String("listen-tls-key-file", "", "PEM key of the TLS listener")
	tlsCA := flag.String("listen-tls-ca-file", "", "PEM CA that client certificates must chain to (empty: none asked)")
	flag.Parse()

	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		log.Fatalf("bad -log-level: %v", err)
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	cfg := &ferretdb.Config{
		Listener: ferretdb.ListenerConfig{TCP: *listen, TLS: *listenTLS, TLSCertFile: *tlsCert, TLSKeyFile: *tlsKey, TLSCAFile: *tlsCA},
		Logger:   logger,
		Handler:  *handler,
	}
	switch *handler {
	case "sqlite":
		if *dir == "" {
			log.Fatal("-dir is required for the sqlite handler")
		}
		abs, err := filepath.Abs(*dir)
		if err != nil {
			log.Fatal(err)
		}
		if err := os.MkdirAll(abs, 0o755); err != nil {
			log.Fatal(err)
		}
		cfg.SQLiteURL = "file:" + strings.TrimSuffix(abs, "/") + "/"
	case "postgresql":
		if *pgURL == "" {
			log.Fatal("-postgresql-url is required for the postgresql handler")
		}
		cfg.PostgreSQLURL = *pgURL
	default:
		log.Fatalf("unknown handler %q", *handler)
	}

	f, err := ferretdb.New(cfg)
	if err != nil {
		log.Fatal(err)
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	fmt.Fprintf(os.Stderr, "cdc-ferretdb: listening on %q, TLS on %q (handler %s) pid %d\n", *listen, *listenTLS, *handler, os.Getpid())
	if err := f.Run(ctx); err != nil && ctx.Err() == nil {
		log.Fatalf("ferretdb stopped: %v", err)
	}
	fmt.Fprintln(os.Stderr, "cdc-ferretdb: stopped")
}
