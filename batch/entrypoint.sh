#!/usr/bin/env bash
# Entrypoint of the pstfast Batch image: runs `pstfast "$@"`, e.g.
#   pipeline stage extract --pst-file-id ID --project-id P --source s3://... --out s3://...
# with its scratch files in a per-job folder on the NVMe mount, removed afterwards.
#
# Exit codes: pstfast's own (75 transient: the state machine retries with backoff; 2 bad
# arguments; 1 a bug), except that a `pipeline stage` whose input was rejected (65, recorded
# as "rejected" in its stage manifest) exits 0: see the end of this file.
set -uo pipefail

scratch="${PSTFAST_SCRATCH:-/scratch}"
if ! { mkdir -p "$scratch" 2>/dev/null && [ -w "$scratch" ]; }; then
  echo "pstfast-entrypoint: $scratch is not writable; using ${TMPDIR:-/tmp}" >&2
  scratch="${TMPDIR:-/tmp}"
fi
# one folder per job: several jobs may share a host (and its /scratch)
job_dir="$(mktemp -d "$scratch/pstfast-job-${AWS_BATCH_JOB_ID:-local}.XXXXXX")" || {
  echo "pstfast-entrypoint: cannot create a job folder in $scratch" >&2
  exit 75
}
export PSTFAST_SCRATCH="$job_dir"
trap 'rm -rf -- "$job_dir"' EXIT

[ "$#" -gt 0 ] || set -- --help

# run as a child (not exec) so the scratch folder is cleaned up; forward Batch's SIGTERM
"${PSTFAST_BIN:-pstfast}" "$@" &
child=$!
trap 'kill -TERM "$child" 2>/dev/null' TERM INT
wait "$child"
rc=$?
if [ "$rc" -gt 128 ]; then
  wait "$child"  # interrupted by a forwarded signal: collect the real status
  rc=$?
fi
# 65 = the input is bad (not a PST, truncated, ...): `pstfast pipeline stage` has recorded
# "rejected" in its stage manifest. Exit 0 so Step Functions burns no retries on it; the
# Check/Is*Rejected states read that manifest and fail the job fast.
if [ "$rc" -eq 65 ] && [ "${1:-}" = "pipeline" ] && [ "${2:-}" = "stage" ]; then
  echo "pstfast-entrypoint: input rejected (recorded in the stage manifest)" >&2
  rc=0
fi
exit "$rc"
