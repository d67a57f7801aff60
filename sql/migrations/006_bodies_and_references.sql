-- Real mailboxes (issue 17): where body_text came from (PR_BODY, the HTML body or the RTF
-- body), the decompressed RTF body itself, and the path or URL of a by-reference attachment.
-- content_hash is now computed over the derived body text (canonical form v3): rows loaded
-- before keep their v2 hashes until their PST is extracted and loaded again.
ALTER TABLE email_messages ADD COLUMN IF NOT EXISTS body_text_source text;
ALTER TABLE email_messages ADD COLUMN IF NOT EXISTS body_rtf text;
ALTER TABLE email_messages DROP CONSTRAINT IF EXISTS email_messages_body_text_source_check;
ALTER TABLE email_messages ADD CONSTRAINT email_messages_body_text_source_check
    CHECK (body_text_source IN ('plain', 'html', 'rtf'));
ALTER TABLE email_attachments ADD COLUMN IF NOT EXISTS reference text;
