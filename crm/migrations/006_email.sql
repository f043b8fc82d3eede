-- Email templates: subject, HTML and text parts in Go template syntax.
CREATE TABLE email_templates (
    id         text PRIMARY KEY,
    subject    text NOT NULL,
    html       text NOT NULL DEFAULT '',
    text       text NOT NULL DEFAULT '',
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- The outbox becomes the record of every email: queued rows are now sent over SMTP.
ALTER TABLE email_outbox RENAME TO email_messages;
ALTER TABLE email_messages ALTER COLUMN status SET DEFAULT 'sending';
ALTER TABLE email_messages ADD COLUMN subject text NOT NULL DEFAULT '';
ALTER TABLE email_messages ADD COLUMN message_id text NOT NULL DEFAULT '';
ALTER TABLE email_messages ADD COLUMN sent_at timestamptz;

-- An external send writes its ledger row as 'sending' before calling the provider and
-- 'done' after, so a retry knows whether the call may already have happened.
ALTER TABLE action_ledger ADD COLUMN state text NOT NULL DEFAULT 'done' CHECK (state IN ('sending', 'done'));

-- Marketing sends stop for a contact who unsubscribed.
ALTER TABLE contacts ADD COLUMN unsubscribed_at timestamptz;
