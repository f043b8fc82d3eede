package dev

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/cairnhq/cairn/crm"
	"github.com/cairnhq/cairn/object"
)

// applyObjects defines every custom object type in dir (<type>.yaml with name, schema,
// sources), before the journeys that test or trigger on them.
func applyObjects(ctx context.Context, db crm.DB, dir string) error {
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		return err
	}
	for _, f := range files {
		doc, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		t, err := object.Decode(strings.TrimSuffix(filepath.Base(f), ".yaml"), doc)
		if err != nil {
			return fmt.Errorf("%s: %w", f, err)
		}
		if _, err := crm.PutObjectType(ctx, db, t, string(doc)); err != nil {
			return fmt.Errorf("%s: %w", f, err)
		}
	}
	return nil
}
