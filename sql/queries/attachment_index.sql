-- The search entries of one PST's attachments (attachment_search, 011): drop those whose
-- attachment changed or went (a reload), then add one per attachment whose content has text.
-- Returns the entries added and the PST's entries in all.
WITH gone AS (
    DELETE FROM attachment_search s
     USING email_messages m
     WHERE s.email_id = m.email_id AND m.project_id = %(project_id)s AND m.pst_file_id = %(pst_file_id)s
       AND NOT EXISTS (SELECT 1 FROM email_attachments a
                        WHERE a.attachment_id = s.attachment_id AND a.sha256 = s.sha256)
    RETURNING 1),
added AS (
    INSERT INTO attachment_search (attachment_id, email_id, project_id, sha256, search_vector, cut)
    SELECT a.attachment_id, a.email_id, m.project_id, a.sha256, e.search_vector, e.cut
      FROM email_attachments a
      JOIN email_messages m USING (email_id)
      JOIN attachment_texts t ON t.project_id = m.project_id AND t.sha256 = a.sha256
     CROSS JOIN LATERAL pstfast_attachment_entry(a.filename, t.text) e
     WHERE m.project_id = %(project_id)s AND m.pst_file_id = %(pst_file_id)s AND t.status = 'ok'
    ON CONFLICT (attachment_id) DO NOTHING
    RETURNING 1)
SELECT (SELECT count(*) FROM added) AS added, (SELECT count(*) FROM gone) AS removed;
