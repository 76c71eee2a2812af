// Command ferretdb runs FerretDB v1 (embedded package) as CampusConnect's
// MongoDB-wire-protocol server on top of PostgreSQL.
//
// Server mode (default):
//
//	ferretdb [-listen HOST:PORT] [-postgresql-url URL] [-log-level info]
//
// Readiness probe mode (used by stack/ferretdb/ready.sh):
//
//	ferretdb -ping [-listen HOST:PORT] [-timeout 1.5s]
//
// sends `hello` over the wire protocol and exits 0 when the server answers ok:1.
// With -ping-user (password from the environment variable named by -ping-password-env),
// it also authenticates with PLAIN and sends `ping`, which makes FerretDB open a
// PostgreSQL connection with those credentials (end-to-end check).
//
// Authentication: the embedded FerretDB v1 supports the PLAIN mechanism only; the
// client's username/password are passed through to PostgreSQL (one pgx pool per
// credential pair), so the PostgreSQL URL should carry no credentials.
//
// Every flag has an environment default (see flag help). Telemetry is always off
// in the embedded package.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/FerretDB/wire"
	"github.com/FerretDB/wire/wirebson"
	"github.com/FerretDB/wire/wireclient"

	"github.com/FerretDB/FerretDB/ferretdb"
)

// env returns the value of the first non-empty environment variable, or def.
func env(def string, names ...string) string {
	for _, n := range names {
		if v := os.Getenv(n); v != "" {
			return v
		}
	}
	return def
}

func defaultListen() string {
	if v := os.Getenv("FERRETDB_LISTEN"); v != "" {
		return v
	}
	return net.JoinHostPort(env("127.0.0.1", "CAMPUS_HOST"), env("27017", "CAMPUS_MONGO_PORT"))
}

func defaultPostgreSQLURL() string {
	if v := os.Getenv("FERRETDB_POSTGRESQL_URL"); v != "" {
		return v
	}
	host := net.JoinHostPort(env("127.0.0.1", "CAMPUS_HOST"), env("5432", "CAMPUS_PG_PORT"))
	return "postgres://" + host + "/campus_docs"
}

func main() {
	listen := flag.String("listen", defaultListen(),
		"TCP listen address (env FERRETDB_LISTEN, else $CAMPUS_HOST:$CAMPUS_MONGO_PORT)")
	pgURL := flag.String("postgresql-url", defaultPostgreSQLURL(),
		"PostgreSQL URL without credentials (env FERRETDB_POSTGRESQL_URL, else postgres://$CAMPUS_HOST:$CAMPUS_PG_PORT/campus_docs)")
	logLevel := flag.String("log-level", env("info", "FERRETDB_LOG_LEVEL"),
		"log level: debug, info, warn, error (env FERRETDB_LOG_LEVEL)")
	ping := flag.Bool("ping", false, "probe mode: send hello to -listen and exit 0 if it answers")
	pingUser := flag.String("ping-user", "", "probe mode: also authenticate (PLAIN) as this user and send ping")
	pingPasswordEnv := flag.String("ping-password-env", "FERRETDB_PING_PASSWORD",
		"probe mode: name of the environment variable holding the -ping-user password")
	timeout := flag.Duration("timeout", 1500*time.Millisecond, "probe mode: overall timeout")
	flag.Parse()

	if *ping {
		ctx, cancel := context.WithTimeout(context.Background(), *timeout)
		defer cancel()
		if err := probe(ctx, *listen, *pingUser, os.Getenv(*pingPasswordEnv)); err != nil {
			fmt.Fprintln(os.Stderr, "ferretdb -ping:", err)
			os.Exit(1)
		}
		fmt.Println("ok")
		return
	}

	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		fmt.Fprintln(os.Stderr, "invalid -log-level:", err)
		os.Exit(2)
	}
	logger := slog.New(slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{Level: level}))
	slog.SetDefault(logger)

	if err := serve(logger, *listen, *pgURL); err != nil {
		logger.Error("ferretdb failed", slog.String("error", err.Error()))
		os.Exit(1)
	}
}

func serve(logger *slog.Logger, listen, pgURL string) error {
	// A MongoDB client that does not authenticate reaches PostgreSQL with the URL's user
	// (none: the OS user) and no password. pgx would fill the gaps from the libpq-style
	// environment and ~/.pgpass, lending those credentials to anonymous clients: clear them.
	for _, k := range []string{"PGUSER", "PGPASSWORD", "PGSERVICE", "PGSERVICEFILE"} {
		_ = os.Unsetenv(k)
	}
	_ = os.Setenv("PGPASSFILE", os.DevNull)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	f, err := ferretdb.New(&ferretdb.Config{
		Listener:      ferretdb.ListenerConfig{TCP: listen},
		Logger:        logger,
		Handler:       "postgresql",
		PostgreSQLURL: pgURL,
	})
	if err != nil {
		return err
	}

	logger.Info("starting FerretDB v1.24.2 (embedded)",
		slog.String("listen", listen), slog.String("postgresql", redact(pgURL)))

	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = f.Run(ctx)
	}()

	select {
	case <-ctx.Done():
		logger.Info("signal received, shutting down")
	case <-done:
		// Run returns early only if the listener failed (e.g. address in use);
		// the reason has already been logged by FerretDB.
		return errors.New("listener stopped unexpectedly")
	}

	select {
	case <-done:
		logger.Info("stopped")
	case <-time.After(10 * time.Second):
		return errors.New("shutdown timed out after 10s")
	}
	return nil
}

// redact hides a password if one was put into the URL anyway.
func redact(u string) string {
	at := strings.LastIndex(u, "@")
	scheme := strings.Index(u, "://")
	if at < 0 || scheme < 0 || at < scheme {
		return u
	}
	userinfo := u[scheme+3 : at]
	if i := strings.Index(userinfo, ":"); i >= 0 {
		userinfo = userinfo[:i] + ":xxxxx"
	}
	return u[:scheme+3] + userinfo + u[at:]
}

// probe sends hello (and optionally PLAIN saslStart + ping) to the server.
func probe(ctx context.Context, addr, user, password string) error {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	conn := wireclient.New(c, slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	defer conn.Close()

	if err = command(ctx, conn, "hello", int32(1), "$db", "admin"); err != nil {
		return err
	}
	if user == "" {
		return nil
	}

	payload := append([]byte{0}, user...)
	payload = append(payload, 0)
	payload = append(payload, password...)
	if err = command(ctx, conn,
		"saslStart", int32(1), "mechanism", "PLAIN",
		"payload", wirebson.Binary{B: payload}, "autoAuthorize", int32(1),
		"$db", "$external",
	); err != nil {
		return err
	}
	return command(ctx, conn, "ping", int32(1), "$db", "admin")
}

func command(ctx context.Context, conn *wireclient.Conn, pairs ...any) error {
	msg, err := wire.NewOpMsg(wirebson.MustDocument(pairs...))
	if err != nil {
		return err
	}
	_, body, err := conn.Request(ctx, msg)
	if err != nil {
		return err
	}
	opMsg, ok := body.(*wire.OpMsg)
	if !ok {
		return fmt.Errorf("%v: unexpected reply %T", pairs[0], body)
	}
	raw, err := opMsg.RawDocument()
	if err != nil {
		return err
	}
	res, err := raw.Decode()
	if err != nil {
		return err
	}
	if ok := res.Get("ok"); ok != 1.0 {
		return fmt.Errorf("%v failed: ok=%v errmsg=%v", pairs[0], ok, res.Get("errmsg"))
	}
	return nil
}
