-- The attachment contents of one PST whose text the project has not extracted yet (or
-- extracted with an older extractor version): one row per sha256, with one of its file
-- names and MIME types (the bytes decide the format where they can) and where the bytes are.
SELECT a.sha256, max(a.size) AS size, min(a.filename) AS filename, min(a.mime_type) AS mime_type,
       min(a.storage_key) AS storage_key
  FROM email_attachments a
  JOIN email_messages m USING (email_id)
 WHERE m.project_id = %(project_id)s AND m.pst_file_id = %(pst_file_id)s
   AND a.sha256 IS NOT NULL AND a.storage_key IS NOT NULL
   AND NOT EXISTS (SELECT 1 FROM attachment_texts t
                    WHERE t.project_id = m.project_id AND t.sha256 = a.sha256 AND t.version = %(version)s)
 GROUP BY a.sha256
 ORDER BY a.sha256;
