-- Move a PST to a new status (success path): clears any earlier failure.
UPDATE pst_files
   SET status       = %(status)s,
       updated_at   = now(),
       error        = NULL,
       error_kind   = NULL,
       failed_stage = NULL,
       email_count      = coalesce(%(email_count)s, email_count),
       attachment_count = coalesce(%(attachment_count)s, attachment_count),
       manifest_sha256  = coalesce(%(manifest_sha256)s, manifest_sha256),
       extracted_at = CASE WHEN %(status)s = 'extracted' THEN now() ELSE extracted_at END,
       loaded_at    = CASE WHEN %(status)s = 'loaded'    THEN now() ELSE loaded_at END,
       threaded_at  = CASE WHEN %(status)s = 'threaded'  THEN now() ELSE threaded_at END,
       deduped_at   = CASE WHEN %(status)s = 'deduped'   THEN now() ELSE deduped_at END,
       indexed_at   = CASE WHEN %(status)s = 'indexed'   THEN now() ELSE indexed_at END
 WHERE pst_file_id = %(pst_file_id)s;
