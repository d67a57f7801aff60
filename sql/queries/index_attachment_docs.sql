-- The OpenSearch attachment documents of one PST (the opensearch index backend): one per
-- attachment whose content has text (attachment_texts, 011), naming its e-mail and thread,
-- in attachment_id order; the text cut to %(text_chars)s characters (text_chars: its length).
SELECT a.attachment_id, a.email_id, m.project_id, m.pst_file_id, m.thread_id, m.subject, a.filename, a.sha256,
       left(t.text, %(text_chars)s) AS attachment_text, length(t.text) AS text_chars
  FROM email_attachments a
  JOIN email_messages m USING (email_id)
  JOIN attachment_texts t ON t.project_id = m.project_id AND t.sha256 = a.sha256
 WHERE m.project_id = %(project_id)s AND m.pst_file_id = %(pst_file_id)s AND t.status = 'ok'
 ORDER BY a.attachment_id;
