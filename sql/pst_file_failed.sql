-- Mark a PST failed with the reason (a terminal error, or the pipeline's final Catch).
INSERT INTO pst_files (pst_file_id, project_id, status, error, error_kind, failed_stage, failed_at)
VALUES (%(pst_file_id)s, coalesce(%(project_id)s, ''), 'failed', %(error)s, %(error_kind)s, %(stage)s, now())
ON CONFLICT (pst_file_id) DO UPDATE
   SET status = 'failed', error = EXCLUDED.error, error_kind = EXCLUDED.error_kind,
       failed_stage = EXCLUDED.failed_stage, failed_at = now(), updated_at = now();
