-- The text status of one PST's attachment contents (one per sha256), for the stage manifest:
-- the counts by status, and the first failures with their reasons.
SELECT t.status, count(DISTINCT t.sha256) AS contents,
       (array_agg(DISTINCT a.filename || ': ' || coalesce(t.reason, t.status)))[1:%(limit)s] AS examples
  FROM email_attachments a
  JOIN email_messages m USING (email_id)
  JOIN attachment_texts t ON t.project_id = m.project_id AND t.sha256 = a.sha256
 WHERE m.project_id = %(project_id)s AND m.pst_file_id = %(pst_file_id)s
 GROUP BY t.status
 ORDER BY t.status;
