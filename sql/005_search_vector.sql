-- 005: the search vector in one place. The load computes it as rows arrive (one write per
-- row instead of a second full-row UPDATE by the index stage, which rewrote every row and
-- every index entry: 6 s of the 20k-message pipeline); the index stage fills any row still
-- without one. 'simple' config: no stemming, so any language's words and exact phrases are
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

-- New rows' index entries wait in the GIN index's pending list (no per-row merge into the
-- tree while the load inserts); the index stage merges them in one sorted batch with
-- gin_clean_pending_list (index_update.sql). Queries also read the pending list meanwhile.
ALTER INDEX email_messages_search_idx SET (gin_pending_list_limit = 262144);
