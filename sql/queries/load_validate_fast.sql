-- The first-load check of one staged PST: ONE scan of each staging table (the key columns
-- go into in-memory CTEs that the anti-joins reuse). Row counts, non-null keys, this
-- PST/project only, every embedded message's parent and every attachment's email present.
-- Unique ids and "no id already loaded from another PST" are not counted here: on a first
-- load (no rows of this PST in the targets) the targets' primary keys enforce both inside
-- the insert transaction, and loader.py answers a violation with load_validate.sql.
WITH e AS MATERIALIZED (SELECT email_id, parent_email_id, project_id, pst_file_id, folder_id FROM {emails}),
     a AS MATERIALIZED (SELECT attachment_id, email_id FROM {attachments})
SELECT ea.emails, ea.null_email_keys, ea.foreign_pst_rows, ea.foreign_project_rows,
       (SELECT count(*) FROM e c
         WHERE c.parent_email_id IS NOT NULL
           AND NOT EXISTS (SELECT 1 FROM e p WHERE p.email_id = c.parent_email_id)) AS orphan_embedded,
       aa.attachments, aa.null_attachment_keys,
       (SELECT count(*) FROM a
         WHERE NOT EXISTS (SELECT 1 FROM e WHERE e.email_id = a.email_id))        AS orphan_attachments,
       -- 010: the folders (an extract before 010 has none, and its rows no folder_id)
       (SELECT count(*) FROM {folders})                                           AS folders,
       (SELECT count(*) FROM {folders} WHERE folder_id IS NULL)                   AS null_folder_keys,
       (SELECT count(*) FROM {folders}
         WHERE pst_file_id IS DISTINCT FROM %(pst_file_id)s
            OR project_id IS DISTINCT FROM %(project_id)s)                        AS foreign_folder_rows,
       (SELECT count(*) FROM e
         WHERE e.folder_id IS NOT NULL
           AND NOT EXISTS (SELECT 1 FROM {folders} f WHERE f.folder_id = e.folder_id)) AS orphan_folder_refs
  FROM (SELECT count(*) AS emails,
               count(*) FILTER (WHERE email_id IS NULL OR project_id IS NULL OR pst_file_id IS NULL) AS null_email_keys,
               count(*) FILTER (WHERE pst_file_id IS DISTINCT FROM %(pst_file_id)s) AS foreign_pst_rows,
               count(*) FILTER (WHERE project_id IS DISTINCT FROM %(project_id)s)   AS foreign_project_rows
          FROM e) ea,
       (SELECT count(*) AS attachments,
               count(*) FILTER (WHERE attachment_id IS NULL OR email_id IS NULL)   AS null_attachment_keys
          FROM a) aa;
