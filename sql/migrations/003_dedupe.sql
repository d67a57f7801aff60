-- 003: dedupe_emails(project_id): exact duplicates by content_hash within a project.
--
-- Only top-level messages take part (an embedded message belongs to its parent's family).
-- In each group the master is the earliest sent_at (NULLs last), then the smallest
-- email_id: a choice that does not depend on load order. Every other member gets
-- duplicate_of = master; the master (and every unique message) gets
-- duplicate_pst_file_ids = the sorted, distinct pst_file_ids (custodians) of its group.
-- Messages without a content_hash are never duplicates. Unchanged rows are not rewritten.

CREATE OR REPLACE FUNCTION dedupe_emails(p_project_id text)
RETURNS TABLE (emails bigint, groups bigint, duplicates bigint, updated bigint)
LANGUAGE plpgsql AS $fn$
DECLARE
    v_updated bigint;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtextextended('pstfast.dedupe:' || p_project_id, 0));
    DROP TABLE IF EXISTS _dd_result;

    CREATE TEMP TABLE _dd_result ON COMMIT DROP AS
    WITH ranked AS (
        SELECT m.email_id, m.pst_file_id, coalesce(m.content_hash, 'id:' || m.email_id::text) AS grp,
               first_value(m.email_id) OVER w AS master,
               row_number() OVER w AS rn
          FROM email_messages m
         WHERE m.project_id = p_project_id AND m.parent_email_id IS NULL
        WINDOW w AS (PARTITION BY coalesce(m.content_hash, 'id:' || m.email_id::text)
                     ORDER BY m.sent_at NULLS LAST, m.email_id)
    ), custodians AS (
        SELECT grp, array_agg(DISTINCT pst_file_id ORDER BY pst_file_id) AS pst_ids, count(*) AS n
          FROM ranked GROUP BY grp
    )
    SELECT r.email_id,
           CASE WHEN r.rn > 1 THEN r.master END AS duplicate_of,
           CASE WHEN r.rn = 1 THEN c.pst_ids END AS duplicate_pst_file_ids,
           c.n AS group_size, r.rn
      FROM ranked r JOIN custodians c USING (grp);
    -- temp tables are never auto-analyzed: without statistics the UPDATE's join is planned blind
    ANALYZE _dd_result;

    UPDATE email_messages m
       SET duplicate_of = d.duplicate_of, duplicate_pst_file_ids = d.duplicate_pst_file_ids
      FROM _dd_result d
     WHERE m.email_id = d.email_id
       AND (m.duplicate_of, m.duplicate_pst_file_ids)
           IS DISTINCT FROM (d.duplicate_of, d.duplicate_pst_file_ids);
    GET DIAGNOSTICS v_updated = ROW_COUNT;

    RETURN QUERY
    SELECT (SELECT count(*) FROM _dd_result),
           (SELECT count(*) FROM _dd_result WHERE rn = 1 AND group_size > 1),
           (SELECT count(*) FROM _dd_result WHERE rn > 1),
           v_updated;
END
$fn$;
