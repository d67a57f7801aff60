-- Invariants of one staged PST, checked set-wise before anything touches the targets.
-- Returns one row; loader.py compares it with the manifest and refuses on any violation.
SELECT
    (SELECT count(*) FROM {emails})                                             AS emails,
    (SELECT count(DISTINCT email_id) FROM {emails})                             AS distinct_email_ids,
    (SELECT count(*) FROM {emails}
      WHERE email_id IS NULL OR project_id IS NULL OR pst_file_id IS NULL)      AS null_email_keys,
    (SELECT count(*) FROM {emails} WHERE pst_file_id IS DISTINCT FROM %(pst_file_id)s) AS foreign_pst_rows,
    (SELECT count(*) FROM {emails} WHERE project_id IS DISTINCT FROM %(project_id)s)   AS foreign_project_rows,
    (SELECT count(*) FROM {emails} e
      WHERE e.parent_email_id IS NOT NULL
        AND NOT EXISTS (SELECT 1 FROM {emails} p WHERE p.email_id = e.parent_email_id)) AS orphan_embedded,
    (SELECT count(*) FROM {attachments})                                        AS attachments,
    (SELECT count(DISTINCT attachment_id) FROM {attachments})                   AS distinct_attachment_ids,
    (SELECT count(*) FROM {attachments}
      WHERE attachment_id IS NULL OR email_id IS NULL)                          AS null_attachment_keys,
    (SELECT count(*) FROM {attachments} a
      WHERE NOT EXISTS (SELECT 1 FROM {emails} e WHERE e.email_id = a.email_id)) AS orphan_attachments,
    (SELECT count(*) FROM email_messages m JOIN {emails} e USING (email_id)
      WHERE m.pst_file_id <> e.pst_file_id)                                     AS id_collisions,
    -- an attachment_id already loaded under another PST's email: the upsert would re-point it
    (SELECT count(*) FROM email_attachments t JOIN {attachments} a USING (attachment_id)
       JOIN email_messages m ON m.email_id = t.email_id
      WHERE m.pst_file_id <> %(pst_file_id)s)                                   AS attachment_id_collisions,
    -- 010: the folders
    (SELECT count(*) FROM {folders})                                            AS folders,
    (SELECT count(*) FROM {folders} WHERE folder_id IS NULL)                    AS null_folder_keys,
    (SELECT count(*) FROM {folders}
      WHERE pst_file_id IS DISTINCT FROM %(pst_file_id)s
         OR project_id IS DISTINCT FROM %(project_id)s)                         AS foreign_folder_rows,
    (SELECT count(*) FROM {emails} e
      WHERE e.folder_id IS NOT NULL
        AND NOT EXISTS (SELECT 1 FROM {folders} f WHERE f.folder_id = e.folder_id)) AS orphan_folder_refs,
    (SELECT count(*) FROM email_folders t JOIN {folders} f USING (folder_id)
      WHERE t.pst_file_id <> f.pst_file_id)                                     AS folder_id_collisions;
