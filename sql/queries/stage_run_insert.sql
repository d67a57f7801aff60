INSERT INTO stage_runs (pst_file_id, project_id, stage, attempt, status, started_at,
                        finished_at, seconds, counts, timings, metrics, error, error_kind)
VALUES (%(pst_file_id)s, %(project_id)s, %(stage)s, %(attempt)s, %(status)s, %(started_at)s,
        %(finished_at)s, %(seconds)s, %(counts)s, %(timings)s, %(metrics)s, %(error)s, %(error_kind)s);
