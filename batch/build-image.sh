#!/usr/bin/env bash
# Build the Batch image without a Docker engine or a registry, then check it from inside.
#
#   batch/build-image.sh [TAG]          (default TAG: pstfast:dev; run as root, from anywhere)
#
# 1. a local Debian bookworm base: mmdebstrap --variant=minbase (+ python3, python3-venv,
#    ca-certificates) -> buildah from scratch / add / commit  (skipped when it exists;
#    PSTFAST_REBUILD_BASE=1 remakes it). PSTFAST_IMAGE_BASE=<image> uses another base
#    instead (e.g. python:3.12-slim-bookworm when a registry is reachable).
# 2. buildah build -f batch/Dockerfile --build-arg BASE=<that base>, with this machine's CA
#    bundle mounted for pip (PyPI may be reached through a TLS-intercepting proxy).
# 3. inside the image (buildah run): `pstfast --version`; `pstfast warm-up` again must find
#    the numba cache warm (well under WARM_LIMIT_S seconds, a cold one takes 30-120 s); the
#    entrypoint extracts a tiny writer-made PST (`pstfast dev synth`) with the compiled reader.
#
# Needs: apt-get install -y buildah mmdebstrap. Storage: vfs, isolation: chroot (works in
# an unprivileged container without fuse/overlay). Takes minutes: not part of pytest.
set -euo pipefail

TAG="${1:-pstfast:dev}"
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CA="${PSTFAST_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}"
BASE_TAG="localhost/pstfast-base:bookworm"
WARM_LIMIT_S="${WARM_LIMIT_S:-10}"
export STORAGE_DRIVER="${STORAGE_DRIVER:-vfs}" BUILDAH_ISOLATION="${BUILDAH_ISOLATION:-chroot}"

say() { printf '[build-image %s] %s\n' "$(date +%H:%M:%S)" "$*"; }
die() { say "FAILED: $*" >&2; exit 1; }
for tool in buildah mmdebstrap; do
  command -v "$tool" >/dev/null || die "$tool not installed (apt-get install -y buildah mmdebstrap)"
done
[ -r "$CA" ] || die "no CA bundle at $CA (set PSTFAST_CA_BUNDLE)"
started=$(date +%s)

# ---- 1. the base -----------------------------------------------------------------------
base="${PSTFAST_IMAGE_BASE:-}"
if [ -z "$base" ]; then
  base="$BASE_TAG"
  if [ "${PSTFAST_REBUILD_BASE:-0}" = 1 ] || ! buildah inspect --type image "$base" >/dev/null 2>&1; then
    work="$(mktemp -d)"
    trap 'rm -rf "$work"' EXIT
    say "mmdebstrap bookworm (minbase + python3) -> $work/base.tar"
    mmdebstrap --quiet --variant=minbase --include=python3,python3-venv,ca-certificates \
      bookworm "$work/base.tar"
    ctr="$(buildah from scratch)"
    buildah add --quiet "$ctr" "$work/base.tar" / >/dev/null
    buildah config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
      --env LANG=C.UTF-8 --cmd /bin/bash "$ctr"
    buildah commit --quiet --rm "$ctr" "$base" >/dev/null
    say "base image $base committed"
  else
    say "base image $base exists (PSTFAST_REBUILD_BASE=1 remakes it)"
  fi
fi

# ---- 2. the image ------------------------------------------------------------------------
say "buildah build -f batch/Dockerfile --build-arg BASE=$base -t $TAG"
buildah build --quiet --layers=false -f "$REPO/batch/Dockerfile" \
  --build-arg BASE="$base" --build-arg PIP_CERT=/run/pstfast-ca.crt \
  --volume "$CA:/run/pstfast-ca.crt:ro" \
  -t "$TAG" "$REPO" >/dev/null
built=$(date +%s)
say "image $TAG built in $((built - started)) s"

# ---- 3. checks inside the image ------------------------------------------------------------
ctr="$(buildah from --quiet "$TAG")"
cleanup() { buildah rm "$ctr" >/dev/null 2>&1 || true; }
trap cleanup EXIT
user="$(buildah inspect --format '{{.OCIv1.Config.User}}' "$TAG")"
[ "$user" = pstfast ] || die "image runs as '$user', not the unprivileged pstfast user"
run() { buildah run --user pstfast "$ctr" -- "$@"; }

version="$(run pstfast --version)"
say "pstfast --version: $version"
expected="$(cd "$REPO" && sed -n 's/^__version__ = "\(.*\)"/\1/p' pstfast/_version.py)"
case "$version" in *"$expected"*) ;; *) die "version '$version' is not this checkout's $expected" ;; esac

warm="$(run pstfast warm-up --json)"
say "pstfast warm-up (cache already warm?): $warm"
run python3 - "$warm" "$WARM_LIMIT_S" <<'PY' || die "the numba cache is not warm"
import json, sys
seconds = json.loads(sys.argv[1])
total = sum(v for v in seconds.values() if isinstance(v, (int, float)))
limit = float(sys.argv[2])
print(f"warm-up took {total:.2f} s (limit {limit} s)")
sys.exit(0 if total < limit else 1)
PY

say "entrypoint on a tiny writer-made PST"
run sh -ec '
  cd /tmp
  pstfast dev synth tiny.pst --messages 25 --seed 7 -q
  PSTFAST_SCRATCH=/tmp/scratch pstfast-entrypoint extract tiny.pst --out /tmp/out --json > extract.json
  python3 - <<PY
import json, glob
result = json.load(open("extract.json"))
(manifest_path,) = glob.glob("/tmp/out/pst-v2/*/manifest.json")
manifest = json.load(open(manifest_path))
assert manifest["counts"]["emails"] >= 25, manifest["counts"]
assert manifest["extra"]["compiled_reader"] is True, manifest["extra"]
print("entrypoint extract:", json.dumps(manifest["counts"]), "compiled_reader:", manifest["extra"]["compiled_reader"])
PY
'
say "OK: $TAG built and checked in $(( $(date +%s) - started )) s"
