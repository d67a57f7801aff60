-- First load of one staged PST (no rows of it in the targets): plain INSERT ... SELECT.
-- No ON CONFLICT: no speculative insertion, no per-row confirm record in the WAL, no
-- stale-row deletes. A duplicate id in the staged files or an id already loaded from
-- another PST violates a primary key, which aborts the whole transaction (targets
-- untouched); loader.py then explains it with load_validate.sql. Same columns as load_upsert.sql. Keep the order:
-- loader.py runs the first statement alone per pipelined part, the others afterwards.
INSERT INTO email_messages (
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
  FROM {emails};

INSERT INTO email_attachments (
    attachment_id, email_id, ordinal, filename, mime_type, size, content_id, is_inline,
    method, sha256, storage_key, reference)
SELECT attachment_id, email_id, ordinal, filename, mime_type, size, content_id, is_inline,
       method, sha256, storage_key, reference
  FROM {attachments};

-- 010: the PST's folders (few rows): replaced as a whole
DELETE FROM email_folders WHERE project_id = %(project_id)s AND pst_file_id = %(pst_file_id)s;

INSERT INTO email_folders (
    folder_id, parent_folder_id, project_id, pst_file_id, name, path, container_class, item_count, unread_count)
SELECT folder_id, parent_folder_id, project_id, pst_file_id, name, path, container_class, item_count, unread_count
  FROM {folders};

