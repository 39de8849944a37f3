#!/usr/bin/env bash
# Peak memory of S3 uploads: starts s3s-fs on a free 127.0.0.1 port, runs `flowprobe run` with
# a put + verified get of growing random payloads, and prints each run's peak RSS (VmHWM from
# /proc/PID/status, sampled while it runs) and wall time. A streamed multipart upload should
# stay flat as the payload grows: parts are made, hashed and sent one at a time.
#
#   benches/s3_upload_memory.sh                 # release build
#   PROFILE=debug benches/s3_upload_memory.sh   # reuse the debug build
#   SIZES="64MiB 256MiB" benches/s3_upload_memory.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
PROFILE="${PROFILE:-release}"
SIZES="${SIZES:-64KiB 16MiB 64MiB 256MiB}"

if [ "$PROFILE" = release ]; then
  cargo build --release --quiet --bin flowprobe
else
  cargo build --quiet --bin flowprobe
fi
BIN="target/$PROFILE/flowprobe"
command -v s3s-fs >/dev/null || { echo "s3s-fs is not installed: run scripts/setup.sh" >&2; exit 2; }

WORK="$(mktemp -d)"
S3_PID=""
cleanup() {
  if [ -n "$S3_PID" ]; then kill "$S3_PID" 2>/dev/null || true; wait "$S3_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
mkdir -p "$WORK/data/bench"
s3s-fs --host 127.0.0.1 --port "$PORT" --access-key bench --secret-key bench-secret "$WORK/data" \
  >"$WORK/s3s-fs.log" 2>&1 &
S3_PID=$!
for _ in $(seq 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break
  sleep 0.05
done
echo "bench-secret" >"$WORK/sk"

printf '%-8s %12s %10s\n' size "peak RSS" wall
for size in $SIZES; do
  cat >"$WORK/bench.yaml" <<EOF
name: upload-memory
secrets: {sk: {file: "$WORK/sk"}}
schedule: {interval: 1h, timeout: 30m}
defaults: {timeout: 20m}
steps:
  - name: upload
    s3: {endpoint: "http://127.0.0.1:$PORT", bucket: bench, access_key_id: bench, secret_access_key: "\${{ secrets.sk }}", put: {size: $size}}
  - name: download
    s3: {endpoint: "http://127.0.0.1:$PORT", bucket: bench, access_key_id: bench, secret_access_key: "\${{ secrets.sk }}", get: {key: "\${{ steps.upload.key }}"}}
EOF
  start=$(date +%s.%N)
  "$BIN" run "$WORK/bench.yaml" --no-color >"$WORK/out.txt" 2>&1 &
  pid=$!
  peak=0
  while kill -0 "$pid" 2>/dev/null; do
    kib=$(awk '/^VmHWM:/ {print $2}' "/proc/$pid/status" 2>/dev/null || true)
    if [ -n "$kib" ] && [ "$kib" -gt "$peak" ]; then peak=$kib; fi
    sleep 0.005
  done
  if ! wait "$pid"; then cat "$WORK/out.txt" >&2; exit 1; fi
  end=$(date +%s.%N)
  printf '%-8s %9d KiB %9.2fs\n' "$size" "$peak" "$(echo "$end - $start" | bc)"
done
left=$(find "$WORK/data/bench" -type f | wc -l)
echo "objects left in the bucket: $left"
