package embedded

import (
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"go.temporal.io/server/common/config"
	"go.temporal.io/server/common/log"
	"go.temporal.io/server/common/persistence/sql/sqlplugin/postgresql"
	"go.temporal.io/server/tools/common/schema"
	sqltool "go.temporal.io/server/tools/sql"
)

// Postgres persists the server in PostgreSQL, as a production cluster may: history in one
// database, SQL visibility in another (the postgres12 plugin), both created when missing and
// their schemas set up and brought up to date by the server's own schema tool.
type Postgres struct {
	// URL reaches the PostgreSQL server as a role that may create databases:
	// postgres://user:password@host:port/any-database?sslmode=disable.
	URL string
	// Database and VisibilityDatabase default to temporal and temporal_visibility.
	Database, VisibilityDatabase string
}

// Schema names of the server's embedded PostgreSQL schemas.
const (
	pgSchema           = "postgresql/v12/temporal"
	pgVisibilitySchema = "postgresql/v12/visibility"
)

// sqlConfigs returns the history and visibility stores' configurations.
func (p *Postgres) sqlConfigs() (history, visibility *config.SQL, err error) {
	u, err := url.Parse(p.URL)
	if err != nil || u.Host == "" {
		return nil, nil, fmt.Errorf("embedded temporal: postgres URL %q is not postgres://user@host:port/db", p.URL)
	}
	host, port := u.Hostname(), u.Port()
	if port == "" {
		port = "5432"
	}
	attrs := map[string]string{}
	for k, v := range u.Query() {
		if k == "sslmode" || k == "sslrootcert" || k == "sslcert" || k == "sslkey" {
			attrs[k] = v[0]
		}
	}
	pass, _ := u.User.Password()
	base := config.SQL{User: u.User.Username(), Password: pass, PluginName: postgresql.PluginName,
		ConnectAddr: net.JoinHostPort(host, port), ConnectProtocol: "tcp", ConnectAttributes: attrs,
		MaxConns: 10, MaxIdleConns: 10, MaxConnLifetime: time.Hour}
	h, v := base, base
	h.DatabaseName, v.DatabaseName = p.Database, p.VisibilityDatabase
	if h.DatabaseName == "" {
		h.DatabaseName = "temporal"
	}
	if v.DatabaseName == "" {
		v.DatabaseName = "temporal_visibility"
	}
	return &h, &v, nil
}

// setupPostgres creates the database when missing and applies the schema's versions not yet
// applied, as `temporal-sql-tool create-database`, `setup-schema -v 0.0` and `update-schema`
// would.
func setupPostgres(cfg *config.SQL, schemaName string) error {
	logger := log.NewNoopLogger()
	create := *cfg
	if err := sqltool.DoCreateDatabase(&create, "postgres", logger); err != nil && !strings.Contains(err.Error(), "already exists") {
		return fmt.Errorf("embedded temporal: create database %s: %w", cfg.DatabaseName, err)
	}
	conn, err := sqltool.NewConnection(cfg, logger)
	if err != nil {
		return fmt.Errorf("embedded temporal: connect to %s: %w", cfg.DatabaseName, err)
	}
	defer conn.Close()
	if _, err := conn.ReadSchemaVersion(); err != nil {
		if err := schema.NewSetupSchemaTask(conn, &schema.SetupConfig{InitialVersion: "0.0"}, logger).Run(); err != nil {
			return fmt.Errorf("embedded temporal: set up %s: %w", cfg.DatabaseName, err)
		}
	}
	if err := schema.NewUpdateSchemaTask(conn, &schema.UpdateConfig{SchemaName: schemaName}, logger).Run(); err != nil {
		return fmt.Errorf("embedded temporal: update schema of %s: %w", cfg.DatabaseName, err)
	}
	return nil
}
