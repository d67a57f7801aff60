-- 002: build_email_threads(project_id): JWZ-style threading across all PSTs of a project.
--
-- Rules, in order (each email of the project gets thread_id, thread_parent_id, thread_position):
--  1. Headers. Every Message-ID is a node ("container"); copies of one message in several
--     PSTs share it; a message without a Message-ID is its own node. A message's parent is
--     the last of its References, else its In-Reply-To. Consecutive References
--     (r1 -> r2 -> ...) give parents to nodes that have no parent of their own.
--     Referenced ids with no message become placeholders, so siblings whose parent is
--     missing still share a thread. Loops are broken deterministically: in each cycle the
--     member with the earliest sent_at (then smallest key) loses its parent.
--  2. Conversation index. A node still without a parent whose conversation index extends
--     another node's (22-byte header + 5-byte child blocks) hangs under the longest such
--     prefix; if no prefix is present, under a placeholder for the 22-byte header.
--  3. Subject. A message with no reply headers that is still alone (no parent, no
--     children) joins the thread of the earliest root with the same normalized subject
--     (roots that already have replies are preferred).
--  thread_id is md5(project_id, root node) as a uuid: independent of load order.
--  thread_parent_id is the nearest real ancestor (a copy in the same PST preferred).
--  thread_position orders a thread by sent_at (NULLs last), then email_id, from 1.
--  Embedded messages (parent_email_id set) take their container's thread and position,
--  with thread_parent_id = the message they are attached to.

CREATE OR REPLACE FUNCTION pstfast_msgid(raw text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT coalesce(substring(raw FROM '<([^<>[:space:]]+)>'),
                    nullif(btrim(raw, E' \t\r\n<>'), ''))
$$;

-- Recompute _th_down (node -> root, nearest real ancestor) from _th_node / _th_edge,
-- cutting one edge per cycle until every node reaches a root. Returns cycles broken.
CREATE OR REPLACE FUNCTION pstfast_thread_settle() RETURNS bigint
LANGUAGE plpgsql AS $fn$
DECLARE
    v_broken bigint := 0;
    v_left   bigint;
    v_cut    bigint;
BEGIN
    LOOP
        DROP TABLE IF EXISTS _th_down;
        CREATE TEMP TABLE _th_down ON COMMIT DROP AS
        WITH RECURSIVE down(key, root, real_anc, is_real) AS (
            SELECT n.key, n.key, NULL::text, n.is_real
              FROM _th_node n
             WHERE NOT EXISTS (SELECT 1 FROM _th_edge e WHERE e.child = n.key)
          UNION ALL
            SELECT c.key, d.root, CASE WHEN d.is_real THEN d.key ELSE d.real_anc END, c.is_real
              FROM down d
              JOIN _th_edge e ON e.parent = d.key
              JOIN _th_node c ON c.key = e.child
        )
        SELECT key, root, real_anc FROM down;
        CREATE INDEX ON _th_down (key);
        ANALYZE _th_down;

        SELECT count(*) INTO v_left
          FROM _th_node n WHERE NOT EXISTS (SELECT 1 FROM _th_down d WHERE d.key = n.key);
        EXIT WHEN v_left = 0;

        -- nodes not reached from a root sit on a cycle or below one: find the cycles
        WITH RECURSIVE up(start, cur, path) AS (
            SELECT n.key, e.parent, ARRAY[n.key]
              FROM _th_node n JOIN _th_edge e ON e.child = n.key
             WHERE NOT EXISTS (SELECT 1 FROM _th_down d WHERE d.key = n.key)
          UNION ALL
            SELECT u.start, e.parent, u.path || u.cur
              FROM up u JOIN _th_edge e ON e.child = u.cur
             WHERE u.cur <> u.start AND NOT (u.cur = ANY (u.path))
        ), cut AS (
            SELECT DISTINCT ON (c.cycle) c.member
              FROM (SELECT (SELECT min(x) FROM unnest(u.path) x) AS cycle, u.start AS member
                      FROM up u WHERE u.cur = u.start) c
              JOIN _th_node n ON n.key = c.member
             ORDER BY c.cycle, n.first_sent NULLS LAST, c.member
        )
        DELETE FROM _th_edge e USING cut WHERE e.child = cut.member;
        GET DIAGNOSTICS v_cut = ROW_COUNT;
        IF v_cut = 0 THEN
            RAISE EXCEPTION 'build_email_threads: % nodes unreachable but no cycle found', v_left;
        END IF;
        v_broken := v_broken + v_cut;
    END LOOP;
    RETURN v_broken;
END
$fn$;

CREATE OR REPLACE FUNCTION build_email_threads(p_project_id text)
RETURNS TABLE (emails bigint, threads bigint, placeholders bigint, loops_broken bigint, updated bigint)
LANGUAGE plpgsql AS $fn$
DECLARE
    v_loops   bigint := 0;
    v_updated bigint;
BEGIN
    -- one threading run per project at a time (PSTs of a project may finish together)
    PERFORM pg_advisory_xact_lock(hashtextextended('pstfast.thread:' || p_project_id, 0));
    DROP TABLE IF EXISTS _th_msg, _th_node, _th_edge, _th_result;

    CREATE TEMP TABLE _th_msg ON COMMIT DROP AS
    SELECT s.email_id, s.pst_file_id, s.sent_at, s.ci, s.nsubj, s.irt, s.refs,
           coalesce('m:' || s.mid, 'e:' || s.email_id::text) AS key
      FROM (SELECT m.email_id, m.pst_file_id, m.sent_at,
                   pstfast_msgid(m.internet_message_id) AS mid,
                   nullif(pstfast_msgid(m.in_reply_to), pstfast_msgid(m.internet_message_id)) AS irt,
                   ARRAY(SELECT r FROM (SELECT pstfast_msgid(x) AS r, o
                                          FROM unnest(m."references") WITH ORDINALITY AS u (x, o)) q
                          WHERE r IS NOT NULL
                            AND r IS DISTINCT FROM pstfast_msgid(m.internet_message_id)
                          ORDER BY o) AS refs,
                   CASE WHEN m.conversation_index ~* '^([0-9a-f]{2}){22}(([0-9a-f]{2}){5})*$'
                        THEN lower(m.conversation_index) END AS ci,
                   nullif(m.normalized_subject, '') AS nsubj
              FROM email_messages m
             WHERE m.project_id = p_project_id AND m.parent_email_id IS NULL) s;
    ANALYZE _th_msg;

    CREATE TEMP TABLE _th_node ON COMMIT DROP AS
    SELECT key, true AS is_real, min(sent_at) AS first_sent, min(ci) AS ci, min(nsubj) AS nsubj,
           bool_and(irt IS NULL AND cardinality(refs) = 0) AS no_headers
      FROM _th_msg GROUP BY key;
    INSERT INTO _th_node (key, is_real, no_headers)
    SELECT DISTINCT 'm:' || r, false, true
      FROM _th_msg, unnest(refs || irt) AS r
     WHERE r IS NOT NULL
       AND NOT EXISTS (SELECT 1 FROM _th_msg x WHERE x.key = 'm:' || r);
    ALTER TABLE _th_node ADD PRIMARY KEY (key);
    CREATE INDEX ON _th_node (ci);

    -- 1. header edges: a node's own reply headers first, then References chains
    CREATE TEMP TABLE _th_edge ON COMMIT DROP AS
    SELECT DISTINCT ON (child) child, parent, kind
      FROM (SELECT key AS child, 'm:' || coalesce(refs[cardinality(refs)], irt) AS parent,
                   1 AS kind, count(*) AS n
              FROM _th_msg
             WHERE irt IS NOT NULL OR cardinality(refs) > 0
             GROUP BY 1, 2
            UNION ALL
            SELECT 'm:' || refs[i + 1], 'm:' || refs[i], 2, count(*)
              FROM _th_msg, generate_series(1, cardinality(refs) - 1) AS i
             GROUP BY 1, 2) c
     WHERE child <> parent
     ORDER BY child, kind, n DESC, parent;
    CREATE INDEX ON _th_edge (child);
    CREATE INDEX ON _th_edge (parent);
    ANALYZE _th_node;
    ANALYZE _th_edge;
    v_loops := v_loops + pstfast_thread_settle();

    -- 2. conversation index, for nodes that the headers left without a parent
    INSERT INTO _th_edge (child, parent, kind)
    SELECT DISTINCT ON (n.key) n.key,
           coalesce(p.key, 'c:' || left(n.ci, 44)), 3
      FROM _th_node n
      LEFT JOIN LATERAL (
            SELECT p.key
              FROM generate_series(length(n.ci) - 10, 44, -10) AS l
              JOIN _th_node p ON p.ci = left(n.ci, l)
              JOIN _th_down dp ON dp.key = p.key
             WHERE p.key <> n.key AND dp.root <> n.key
             ORDER BY l DESC, p.key
             LIMIT 1) p ON true
     WHERE n.ci IS NOT NULL AND length(n.ci) > 44
       AND NOT EXISTS (SELECT 1 FROM _th_edge e WHERE e.child = n.key)
       AND (p.key IS NOT NULL
            OR EXISTS (SELECT 1 FROM _th_node o
                        WHERE o.key <> n.key AND left(o.ci, 44) = left(n.ci, 44)))
     ORDER BY n.key;
    INSERT INTO _th_node (key, is_real, no_headers)
    SELECT DISTINCT e.parent, false, true
      FROM _th_edge e
     WHERE e.kind = 3 AND NOT EXISTS (SELECT 1 FROM _th_node n WHERE n.key = e.parent);
    ANALYZE _th_node;
    ANALYZE _th_edge;
    v_loops := v_loops + pstfast_thread_settle();

    -- 3. normalized subject, only for lone messages without reply headers
    INSERT INTO _th_edge (child, parent, kind)
    WITH roots AS (
        SELECT r.key, r.nsubj, r.first_sent, r.no_headers,
               EXISTS (SELECT 1 FROM _th_edge e WHERE e.parent = r.key) AS has_children
          FROM _th_node r
         WHERE r.is_real AND r.nsubj IS NOT NULL
           AND NOT EXISTS (SELECT 1 FROM _th_edge e WHERE e.child = r.key)
    ), target AS (
        SELECT DISTINCT ON (nsubj) nsubj, key
          FROM roots
         ORDER BY nsubj, has_children DESC, first_sent NULLS LAST, key
    )
    SELECT lone.key, target.key, 4
      FROM roots lone JOIN target USING (nsubj)
     WHERE lone.no_headers AND NOT lone.has_children AND target.key <> lone.key;
    ANALYZE _th_edge;
    v_loops := v_loops + pstfast_thread_settle();

    CREATE TEMP TABLE _th_result ON COMMIT DROP AS
    WITH top AS (
        SELECT m.email_id, m.pst_file_id, m.sent_at, d.root, d.real_anc
          FROM _th_msg m JOIN _th_down d ON d.key = m.key
    ), parent_pick AS (
        SELECT DISTINCT ON (t.email_id) t.email_id, p.email_id AS parent_id
          FROM top t JOIN _th_msg p ON p.key = t.real_anc
         ORDER BY t.email_id, (p.pst_file_id = t.pst_file_id) DESC, p.sent_at NULLS LAST, p.email_id
    )
    SELECT t.email_id,
           md5(p_project_id || chr(31) || t.root)::uuid AS thread_id,
           pp.parent_id AS thread_parent_id,
           row_number() OVER (PARTITION BY t.root ORDER BY t.sent_at NULLS LAST, t.email_id)::integer
               AS thread_position
      FROM top t LEFT JOIN parent_pick pp USING (email_id);

    INSERT INTO _th_result (email_id, thread_id, thread_parent_id, thread_position)
    WITH RECURSIVE emb (email_id, parent_email_id, thread_id, thread_position) AS (
        SELECT m.email_id, m.parent_email_id, r.thread_id, r.thread_position
          FROM email_messages m JOIN _th_result r ON r.email_id = m.parent_email_id
         WHERE m.project_id = p_project_id
      UNION ALL
        SELECT m.email_id, m.parent_email_id, e.thread_id, e.thread_position
          FROM email_messages m JOIN emb e ON m.parent_email_id = e.email_id
         WHERE m.project_id = p_project_id
    )
    SELECT email_id, thread_id, parent_email_id, thread_position FROM emb;

    UPDATE email_messages m
       SET thread_id = r.thread_id, thread_parent_id = r.thread_parent_id,
           thread_position = r.thread_position
      FROM _th_result r
     WHERE m.email_id = r.email_id
       AND (m.thread_id, m.thread_parent_id, m.thread_position)
           IS DISTINCT FROM (r.thread_id, r.thread_parent_id, r.thread_position);
    GET DIAGNOSTICS v_updated = ROW_COUNT;

    RETURN QUERY
    SELECT (SELECT count(*) FROM _th_result),
           (SELECT count(DISTINCT thread_id) FROM _th_result),
           (SELECT count(*) FROM _th_node WHERE NOT is_real),
           v_loops, v_updated;
END
$fn$;
