-- 005: the search vector in one function (the index stage fills it: index_update.sql).
-- 'simple' config: no stemming, so any language's words and exact phrases are
-- found. Weights: A subject, B sender, C recipients, D body. A tsvector holds at most 1 MB,
-- so the body is cut at 100,000 characters: even 50,000 distinct one-character 4-byte
-- words (~12 bytes each with entry and position) stay near 600 KB.
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

-- New index entries wait in the GIN index's pending list (no per-row merge into the tree
-- while the index stage updates rows); it then merges them in one sorted batch with
-- gin_clean_pending_list (index_finish.sql). Queries also read the pending list meanwhile.
ALTER INDEX email_messages_search_idx SET (gin_pending_list_limit = 262144);
