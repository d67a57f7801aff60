-- 008: a search entry of any email fits in a tsvector (issue 21).
--
-- A tsvector holds at most 1 MB (1,048,575 bytes of lexemes and positions), each lexeme
-- < 2 KB (to_tsvector skips longer words) and positions up to 16383 (later ones count as
-- 16383). 005 cut only the body (100,000 characters), so one message with 100,000
-- recipients (3.4 MB of vector) failed the index stage of its whole PST. Now every field is
-- cut to a budget, and what was cut is recorded in email_search.cut
-- ({"field": [characters kept, characters], ...}; NULL when nothing was): the index stage
-- reports those entries as warnings in its stage manifest.
--
--   field       weight  characters  bytes of vector
--   subject     A        10,000        64 KiB
--   sender      B        10,000        64 KiB
--   body        D       100,000       600,000
--   recipients  C     1,000,000       what is left of 1,040,000 (at least ~300 KB)
--
-- Fast path: all fields together at most 80,000 characters. The worst text measured is 4-byte
-- letters in hyphenated pairs ("x-y": the compound and both parts, 10.5 bytes of vector per
-- character), so such an entry is < 860 KB and is computed as 005 did, in one expression.
-- Longer ones are built piece by piece (pstfast_tsvector_capped).

ALTER TABLE email_search ADD COLUMN IF NOT EXISTS cut jsonb;

-- The tsvector of at most max_chars characters of body, no bigger than max_bytes
-- (pg_column_size), built from pieces of at most 32,768 characters (each < 350 KB of
-- vector), cut after a space or newline, concatenated in order (positions continue). A piece that
-- does not fit is halved until it does; under 256 characters the text is cut there.
-- kept: the characters of body the vector covers.
CREATE OR REPLACE FUNCTION pstfast_tsvector_capped(body text, max_chars integer, max_bytes integer,
                                                   OUT vector tsvector, OUT kept integer)
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    stop_at integer := least(coalesce(length(body), 0), max_chars);
    step integer := 32768;
    piece text;
    part tsvector;
    merged tsvector;
    space integer;
BEGIN
    vector := ''::tsvector;
    kept := 0;
    WHILE kept < stop_at LOOP
        piece := substr(body, kept + 1, least(step, stop_at - kept));
        IF kept + length(piece) < stop_at THEN
            -- end the piece after its last space or newline in its second half: no word is split
            space := greatest(length(piece) + 1 - nullif(strpos(reverse(piece), ' '), 0),
                              length(piece) + 1 - nullif(strpos(reverse(piece), E'\n'), 0));
            IF space > length(piece) / 2 THEN
                piece := left(piece, space);
            END IF;
        END IF;
        part := to_tsvector('simple'::regconfig, piece);
        merged := NULL;
        IF pg_column_size(vector) + pg_column_size(part) <= 1048575 THEN
            merged := vector || part;  -- cannot overflow: a concatenation is at most the sum
            IF pg_column_size(merged) > max_bytes THEN
                merged := NULL;
            END IF;
        END IF;
        IF merged IS NULL THEN
            EXIT WHEN length(piece) < 256;
            step := length(piece) / 2;
            CONTINUE;
        END IF;
        vector := merged;
        kept := kept + length(piece);
    END LOOP;
END
$$;

-- The search entry of one email: its tsvector (as 005's pstfast_search_vector, every field
-- cut to its budget) and what was cut.
CREATE OR REPLACE FUNCTION pstfast_search_entry(
    subject text, sender_name text, sender_email text, "to" text[], cc text[], bcc text[], body_text text,
    OUT search_vector tsvector, OUT cut jsonb)
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    sender text := concat_ws(' ', sender_name, sender_email);
    recipients text := concat_ws(' ', array_to_string("to", ' '), array_to_string(cc, ' '), array_to_string(bcc, ' '));
    body text := coalesce(body_text, '');
    s record;
    f record;
    b record;
    r record;
BEGIN
    cut := NULL;
    IF coalesce(length(subject), 0) + length(sender) + length(recipients) + length(body) <= 80000 THEN
        search_vector := setweight(to_tsvector('simple'::regconfig, coalesce(subject, '')), 'A')
            || setweight(to_tsvector('simple'::regconfig, sender), 'B')
            || setweight(to_tsvector('simple'::regconfig, recipients), 'C')
            || setweight(to_tsvector('simple'::regconfig, body), 'D');
        RETURN;
    END IF;
    s := pstfast_tsvector_capped(subject, 10000, 65536);
    f := pstfast_tsvector_capped(sender, 10000, 65536);
    b := pstfast_tsvector_capped(body, 100000, 600000);
    r := pstfast_tsvector_capped(recipients, 1000000,
                                 1040000 - pg_column_size(s.vector) - pg_column_size(f.vector) - pg_column_size(b.vector));
    search_vector := setweight(s.vector, 'A') || setweight(f.vector, 'B') || setweight(r.vector, 'C')
                     || setweight(b.vector, 'D');
    cut := jsonb_strip_nulls(jsonb_build_object(
        'subject', CASE WHEN s.kept < length(subject) THEN jsonb_build_array(s.kept, length(subject)) END,
        'sender', CASE WHEN f.kept < length(sender) THEN jsonb_build_array(f.kept, length(sender)) END,
        'recipients', CASE WHEN r.kept < length(recipients) THEN jsonb_build_array(r.kept, length(recipients)) END,
        'body', CASE WHEN b.kept < length(body) THEN jsonb_build_array(b.kept, length(body)) END));
    IF cut = '{}'::jsonb THEN
        cut := NULL;
    END IF;
END
$$;

-- 005's name, for callers that want only the vector
CREATE OR REPLACE FUNCTION pstfast_search_vector(
    subject text, sender_name text, sender_email text, "to" text[], cc text[], bcc text[], body_text text)
RETURNS tsvector LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT (pstfast_search_entry(subject, sender_name, sender_email, "to", cc, bcc, body_text)).search_vector
$$;
