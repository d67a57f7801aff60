-- Staging tables for one PST: UNLOGGED (no WAL for data we can re-read), no indexes, no
-- constraints, so COPY runs at full speed. Columns = pstfast.records (a test checks it).
-- {emails} / {attachments} are pstfast_staging.<name> identifiers filled in by loader.py.
DROP TABLE IF EXISTS {emails};
DROP TABLE IF EXISTS {attachments};
CREATE UNLOGGED TABLE {emails} (
    email_id            uuid,
    parent_email_id     uuid,
    project_id          text,
    pst_file_id         text,
    folder_path         text,
    message_class       text,
    internet_message_id text,
    in_reply_to         text,
    "references"        text[],
    conversation_index  text,
    conversation_topic  text,
    subject             text,
    normalized_subject  text,
    sender_name         text,
    sender_email        text,
    "to"                text[],
    cc                  text[],
    bcc                 text[],
    sent_at             timestamptz,
    received_at         timestamptz,
    body_text           text,
    body_html           text,
    transport_headers   text,
    attachment_count    integer,
    size_bytes          bigint,
    importance          smallint,
    content_hash        text,
    extractor_version   text,
    body_text_source    text,
    body_rtf            text,
    sender_x500         text,
    recipient_x500      text[],
    flags               integer,
    is_read             boolean,
    is_draft            boolean,
    created_at          timestamptz,
    modified_at         timestamptz,
    sensitivity         smallint,
    categories          text[],
    sent_representing_name  text,
    sent_representing_email text,
    folder_id           uuid,
    item_properties     jsonb
);
CREATE UNLOGGED TABLE {attachments} (
    attachment_id uuid,
    email_id      uuid,
    ordinal       integer,
    filename      text,
    mime_type     text,
    size          bigint,
    content_id    text,
    is_inline     boolean,
    method        text,
    sha256        text,
    storage_key   text,
    reference     text
);
DROP TABLE IF EXISTS {folders};
CREATE UNLOGGED TABLE {folders} (
    folder_id        uuid,
    parent_folder_id uuid,
    project_id       text,
    pst_file_id      text,
    name             text,
    path             text,
    container_class  text,
    item_count       integer,
    unread_count     integer
);
