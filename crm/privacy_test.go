package crm_test

import (
	"slices"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/cairnhq/cairn/crm"
)

// TestEveryContactTableIsErased guards erasure against new tables: every table with a
// contact_id column, or a foreign key to a table erasure empties, is one erasure empties.
// data_keys (the tombstone of the contact's destroyed key) and erasures (its record) are
// kept by design and hold nothing personal.
func TestEveryContactTableIsErased(t *testing.T) {
	t.Parallel()
	ctx, pool := setup(t)
	erased := crm.ContactTables()
	rows, err := pool.Query(ctx, `
		SELECT DISTINCT c.table_name FROM information_schema.columns c
		JOIN information_schema.tables t ON t.table_schema = c.table_schema AND t.table_name = c.table_name AND t.table_type = 'BASE TABLE'
		WHERE c.table_schema = current_schema() AND c.column_name = 'contact_id'
		UNION
		SELECT DISTINCT src.relname FROM pg_constraint k
		JOIN pg_class src ON src.oid = k.conrelid
		JOIN pg_class dst ON dst.oid = k.confrelid
		JOIN pg_namespace n ON n.oid = src.relnamespace AND n.nspname = current_schema()
		WHERE k.contype = 'f' AND dst.relname = ANY($1)`, erased)
	require.NoError(t, err)
	defer rows.Close()
	for rows.Next() {
		var table string
		require.NoError(t, rows.Scan(&table))
		if table == "data_keys" || table == "erasures" {
			continue
		}
		require.True(t, slices.Contains(erased, table), "table %s holds rows about contacts: add it to crm.contactRows so erasure deletes them and export lists them", table)
	}
	require.NoError(t, rows.Err())
}
