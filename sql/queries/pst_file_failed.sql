-- Mark a PST failed with the reason (a terminal error, or the pipeline's final Catch).
-- A row that belongs to another project is left alone: a job for the same pst_file_id in
-- a second project fails with a project conflict, and must not mark the first project's
-- PST failed. (An unknown project, '', matches any row, as before.)
INSERT INTO pst_files (pst_file_id, project_id, status, error, error_kind, failed_stage, failed_at)
VALUES (%(pst_file_id)s, coalesce(%(project_id)s, ''), 'failed', %(error)s, %(error_kind)s, %(stage)s, now())
ON CONFLICT (pst_file_id) DO UPDATE
   SET status = 'failed', error = EXCLUDED.error, error_kind = EXCLUDED.error_kind,
       failed_stage = EXCLUDED.failed_stage, failed_at = now(), updated_at = now()
 WHERE pst_files.project_id IN (EXCLUDED.project_id, '') OR EXCLUDED.project_id = '';
