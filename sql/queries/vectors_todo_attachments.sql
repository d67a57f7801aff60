-- The attachment contents of one PST with text but no vectors of %(model)s in the project.
SELECT DISTINCT t.sha256, t.text
  FROM email_attachments a
  JOIN email_messages m USING (email_id)
  JOIN attachment_texts t ON t.project_id = m.project_id AND t.sha256 = a.sha256
 WHERE m.project_id = %(project_id)s AND m.pst_file_id = %(pst_file_id)s AND t.status = 'ok'
   AND NOT EXISTS (SELECT 1 FROM attachment_vectors v
                    WHERE v.project_id = t.project_id AND v.sha256 = t.sha256 AND v.model = %(model)s)
 ORDER BY t.sha256;
