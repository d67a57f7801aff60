-- 005: full-text search in its own table. The index stage INSERTs one narrow row per email
-- (email_search) instead of UPDATE-ing the wide email_messages row: an UPDATE of an
-- indexed column is never HOT, so it rewrote every row and added an entry to every index
-- of email_messages (6 s of the 20k-message pipeline). Like the other big tables it has no
-- foreign key (per-row triggers): a load that changes or removes an email deletes its entry
-- (load_upsert.sql), and the index stage computes the missing ones.
--
-- pstfast_search_vector: 'simple' config, no stemming, so any language's words and exact
-- phrases are found. Weights: A subject, B sender, C recipients, D body. A tsvector holds
-- at most 1 MB, so the body is cut at 100,000 characters: even 50,000 distinct
-- one-character 4-byte words (~12 bytes each with entry and position) stay near 600 KB.
CREATE OR REPLACE FUNCTION pstfast_search_vector(
    subject text, sender_name text, sender_email text, "to" text[], cc text[], bcc text[], body_text text)
RETURNS tsvector LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT setweight(to_tsvector('simple'::regconfig, coalesce(subject, '')), 'A')
        || setweight(to_tsvector('simple'::regconfig, concat_ws(' ', sender_name, sender_email)), 'B')
        || setweight(to_tsvector('simple'::regconfig, concat_ws(' ', array_to_string("to", ' '),
                                                                 array_to_string(cc, ' '),
                                                                 array_to_string(bcc, ' '))), 'C')
        || setweight(to_tsvector('simple'::regconfig, left(coalesce(body_text, ''), 100000)), 'D')
$$;

CREATE TABLE IF NOT EXISTS email_search (
    email_id      uuid PRIMARY KEY,
    project_id    text NOT NULL,
    search_vector tsvector NOT NULL
);
-- New entries wait in the GIN pending list (no per-row merge into the tree while the index
-- stage inserts); it then merges them in one sorted batch (index_finish.sql).
CREATE INDEX IF NOT EXISTS email_search_vector_idx ON email_search USING gin (search_vector);
ALTER INDEX email_search_vector_idx SET (gin_pending_list_limit = 262144);

-- the column it replaces (the index stage refills the table for PSTs indexed before)
DROP INDEX IF EXISTS email_messages_search_idx;
ALTER TABLE email_messages DROP COLUMN IF EXISTS search_vector;
