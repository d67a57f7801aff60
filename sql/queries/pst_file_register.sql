-- Make sure a pst_files row exists (a stage may be the first to see this PST).
INSERT INTO pst_files (pst_file_id, project_id, source)
VALUES (%(pst_file_id)s, %(project_id)s, %(source)s)
ON CONFLICT (pst_file_id) DO UPDATE
   SET source = coalesce(EXCLUDED.source, pst_files.source)
RETURNING project_id;
