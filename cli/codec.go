package cli

import (
	"fmt"
	"os"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/spf13/cobra"

	"github.com/cairnhq/cairn/codec"
	"github.com/cairnhq/cairn/crm"
)

// codecCmd manages the payload codec's keys.
func codecCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "codec", Short: "Manage the payload codec's key ring (CAIRN_CODEC_KEYS)"}
	cmd.AddCommand(&cobra.Command{
		Use:   "new-key ID",
		Short: "Print a new key-ring entry (ID:base64key); put it first in CAIRN_CODEC_KEYS to make it current",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			entry := codec.NewKeyEntry(args[0])
			if _, err := codec.ParseKeyRing(entry); err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), entry)
			return nil
		},
	})
	cmd.AddCommand(&cobra.Command{
		Use:   "rewrap",
		Short: "Rewrap every data key under the current key-ring key, so older keys can leave the ring (DATABASE_URL, CAIRN_CODEC_KEYS)",
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := codec.ConfigFromEnv()
			if err != nil {
				return err
			}
			url := os.Getenv("DATABASE_URL")
			if url == "" {
				return fmt.Errorf("DATABASE_URL is not set")
			}
			pool, err := pgxpool.New(cmd.Context(), url)
			if err != nil {
				return err
			}
			defer pool.Close()
			if err := crm.Migrate(cmd.Context(), pool); err != nil {
				return err
			}
			c, err := cfg.Build(pool, logger())
			if err != nil {
				return err
			}
			n, err := c.Rewrap(cmd.Context())
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%d data keys rewrapped under %s; keys no longer needed: every one but %s\n", n, c.Ring().Current(), c.Ring().Current())
			return nil
		},
	})
	return cmd
}
