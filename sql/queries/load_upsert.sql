-- Move one staged PST into the targets. loader.py runs this in ONE transaction together
-- with the status update and staging_drop.sql, so a crash leaves the targets untouched.
-- Rows of this PST that the new output no longer has are removed, so a re-extract with
-- a newer extractor converges; unchanged rows are not rewritten. Order: emails, then
-- attachments, then stale emails (attachments never point at a missing email). Search
-- entries (email_search) of changed or removed emails go with them. First, what the PST's
-- rows were is logged (email_change_log, 007_incremental.sql): its next thread and dedupe
-- runs recompute what the old rows touched as well as what the new ones touch.
SELECT pstfast_log_changes(%(project_id)s, %(pst_file_id)s);

WITH upserted AS (
INSERT INTO email_messages AS t (
    email_id, parent_email_id, project_id, pst_file_id, folder_path, message_class,
    internet_message_id, in_reply_to, "references", conversation_index, conversation_topic,
    subject, normalized_subject, sender_name, sender_email, "to", cc, bcc, sent_at,
    received_at, body_text, body_html, transport_headers, attachment_count, size_bytes,
    importance, content_hash, extractor_version, body_text_source, body_rtf, sender_x500, recipient_x500,
    flags, is_read, is_draft, created_at, modified_at, sensitivity, categories, sent_representing_name,
    sent_representing_email, folder_id, item_properties)
SELECT
    email_id, parent_email_id, project_id, pst_file_id, folder_path, message_class,
    internet_message_id, in_reply_to, "references", conversation_index, conversation_topic,
    subject, normalized_subject, sender_name, sender_email, "to", cc, bcc, sent_at,
    received_at, body_text, body_html, transport_headers, attachment_count, size_bytes,
    importance, content_hash, extractor_version, body_text_source, body_rtf, sender_x500, recipient_x500,
    flags, is_read, is_draft, created_at, modified_at, sensitivity, categories, sent_representing_name,
    sent_representing_email, folder_id, item_properties
  FROM {emails}
ON CONFLICT (email_id) DO UPDATE SET
    parent_email_id = EXCLUDED.parent_email_id, project_id = EXCLUDED.project_id,
    pst_file_id = EXCLUDED.pst_file_id, folder_path = EXCLUDED.folder_path,
    message_class = EXCLUDED.message_class, internet_message_id = EXCLUDED.internet_message_id,
    in_reply_to = EXCLUDED.in_reply_to, "references" = EXCLUDED."references",
    conversation_index = EXCLUDED.conversation_index, conversation_topic = EXCLUDED.conversation_topic,
    subject = EXCLUDED.subject, normalized_subject = EXCLUDED.normalized_subject,
    sender_name = EXCLUDED.sender_name, sender_email = EXCLUDED.sender_email,
    "to" = EXCLUDED."to", cc = EXCLUDED.cc, bcc = EXCLUDED.bcc, sent_at = EXCLUDED.sent_at,
    received_at = EXCLUDED.received_at, body_text = EXCLUDED.body_text,
    body_html = EXCLUDED.body_html, transport_headers = EXCLUDED.transport_headers,
    attachment_count = EXCLUDED.attachment_count, size_bytes = EXCLUDED.size_bytes,
    importance = EXCLUDED.importance, content_hash = EXCLUDED.content_hash,
    extractor_version = EXCLUDED.extractor_version, body_text_source = EXCLUDED.body_text_source,
    body_rtf = EXCLUDED.body_rtf, sender_x500 = EXCLUDED.sender_x500, recipient_x500 = EXCLUDED.recipient_x500,
    flags = EXCLUDED.flags, is_read = EXCLUDED.is_read, is_draft = EXCLUDED.is_draft, created_at = EXCLUDED.created_at,
    modified_at = EXCLUDED.modified_at, sensitivity = EXCLUDED.sensitivity, categories = EXCLUDED.categories, sent_representing_name = EXCLUDED.sent_representing_name,
    sent_representing_email = EXCLUDED.sent_representing_email, folder_id = EXCLUDED.folder_id, item_properties = EXCLUDED.item_properties
WHERE (t.parent_email_id, t.project_id, t.pst_file_id, t.folder_path, t.message_class,
       t.internet_message_id, t.in_reply_to, t."references", t.conversation_index,
       t.conversation_topic, t.subject, t.normalized_subject, t.sender_name, t.sender_email,
       t."to", t.cc, t.bcc, t.sent_at, t.received_at, t.body_text, t.body_html,
       t.transport_headers, t.attachment_count, t.size_bytes, t.importance, t.content_hash,
       t.extractor_version, t.body_text_source, t.body_rtf, t.sender_x500, t.recipient_x500,
       t.flags, t.is_read, t.is_draft, t.created_at, t.modified_at, t.sensitivity,
       t.categories, t.sent_representing_name, t.sent_representing_email, t.folder_id, t.item_properties)
   IS DISTINCT FROM
      (EXCLUDED.parent_email_id, EXCLUDED.project_id, EXCLUDED.pst_file_id, EXCLUDED.folder_path,
       EXCLUDED.message_class, EXCLUDED.internet_message_id, EXCLUDED.in_reply_to,
       EXCLUDED."references", EXCLUDED.conversation_index, EXCLUDED.conversation_topic,
       EXCLUDED.subject, EXCLUDED.normalized_subject, EXCLUDED.sender_name, EXCLUDED.sender_email,
       EXCLUDED."to", EXCLUDED.cc, EXCLUDED.bcc, EXCLUDED.sent_at, EXCLUDED.received_at,
       EXCLUDED.body_text, EXCLUDED.body_html, EXCLUDED.transport_headers,
       EXCLUDED.attachment_count, EXCLUDED.size_bytes, EXCLUDED.importance,
       EXCLUDED.content_hash, EXCLUDED.extractor_version, EXCLUDED.body_text_source, EXCLUDED.body_rtf,
       EXCLUDED.sender_x500, EXCLUDED.recipient_x500,
       EXCLUDED.flags, EXCLUDED.is_read, EXCLUDED.is_draft, EXCLUDED.created_at, EXCLUDED.modified_at,
       EXCLUDED.sensitivity, EXCLUDED.categories, EXCLUDED.sent_representing_name, EXCLUDED.sent_representing_email,
       EXCLUDED.folder_id, EXCLUDED.item_properties)
RETURNING t.email_id)
-- a changed email's search entry is stale: the index stage computes it again
DELETE FROM email_search e USING upserted u WHERE e.email_id = u.email_id;

DELETE FROM email_attachments a
 USING email_messages m
 WHERE a.email_id = m.email_id
   AND m.project_id = %(project_id)s AND m.pst_file_id = %(pst_file_id)s
   AND NOT EXISTS (SELECT 1 FROM {attachments} s WHERE s.attachment_id = a.attachment_id);

INSERT INTO email_attachments AS t (
    attachment_id, email_id, ordinal, filename, mime_type, size, content_id, is_inline,
    method, sha256, storage_key, reference)
SELECT attachment_id, email_id, ordinal, filename, mime_type, size, content_id, is_inline,
       method, sha256, storage_key, reference
  FROM {attachments}
ON CONFLICT (attachment_id) DO UPDATE SET
    email_id = EXCLUDED.email_id, ordinal = EXCLUDED.ordinal, filename = EXCLUDED.filename,
    mime_type = EXCLUDED.mime_type, size = EXCLUDED.size, content_id = EXCLUDED.content_id,
    is_inline = EXCLUDED.is_inline, method = EXCLUDED.method, sha256 = EXCLUDED.sha256,
    storage_key = EXCLUDED.storage_key, reference = EXCLUDED.reference
WHERE (t.email_id, t.ordinal, t.filename, t.mime_type, t.size, t.content_id, t.is_inline,
       t.method, t.sha256, t.storage_key, t.reference)
   IS DISTINCT FROM
      (EXCLUDED.email_id, EXCLUDED.ordinal, EXCLUDED.filename, EXCLUDED.mime_type, EXCLUDED.size,
       EXCLUDED.content_id, EXCLUDED.is_inline, EXCLUDED.method, EXCLUDED.sha256,
       EXCLUDED.storage_key, EXCLUDED.reference);

WITH stale AS (
DELETE FROM email_messages m
 WHERE m.project_id = %(project_id)s AND m.pst_file_id = %(pst_file_id)s
   AND NOT EXISTS (SELECT 1 FROM {emails} s WHERE s.email_id = m.email_id)
RETURNING m.email_id)
DELETE FROM email_search e USING stale WHERE e.email_id = stale.email_id;

-- 010: the PST's folders (few rows): replaced as a whole
DELETE FROM email_folders WHERE project_id = %(project_id)s AND pst_file_id = %(pst_file_id)s;

INSERT INTO email_folders (
    folder_id, parent_folder_id, project_id, pst_file_id, name, path, container_class, item_count, unread_count)
SELECT folder_id, parent_folder_id, project_id, pst_file_id, name, path, container_class, item_count, unread_count
  FROM {folders};
