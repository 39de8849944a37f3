#!/usr/bin/env bash
# Peak memory of a restore drill: starts s3s-fs and a PostgreSQL cluster (initdb in a temp dir,
# as the postgres user when root) on free 127.0.0.1 ports, seeds gzip'd plain dumps of growing
# size with their .sha256 sidecars, runs `flowprobe run` on a fetch (newest, sidecar,
# decompress, keep) + restore + count drill, and prints each run's peak RSS (VmHWM) and wall
# time. The dump streams to a scratch file and through the decoder and COPY in 64KiB chunks,
# so the peak should stay flat as the dump grows (target: +32MiB at most for 256MiB).
#
#   benches/restore_memory.sh                 # release build
#   PROFILE=debug benches/restore_memory.sh   # reuse the debug build
#   SIZES="1 256" benches/restore_memory.sh   # dump sizes in MiB (uncompressed)
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
PROFILE="${PROFILE:-release}"
SIZES="${SIZES:-1 64 256}"

if [ "$PROFILE" = release ]; then
  cargo build --release --quiet --bin flowprobe
else
  cargo build --quiet --bin flowprobe
fi
BIN="target/$PROFILE/flowprobe"
command -v s3s-fs >/dev/null || { echo "s3s-fs is not installed: run scripts/setup.sh" >&2; exit 2; }
PGBIN="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n1)"
[ -x "$PGBIN/initdb" ] || { echo "PostgreSQL is not installed: run scripts/setup.sh" >&2; exit 2; }

WORK="$(mktemp -d)"
S3_PID=""
PG_PID=""
cleanup() {
  if [ -n "$S3_PID" ]; then kill "$S3_PID" 2>/dev/null || true; wait "$S3_PID" 2>/dev/null || true; fi
  if [ -n "$PG_PID" ]; then kill -INT "$PG_PID" 2>/dev/null || true; wait "$PG_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() {
  for _ in $(seq 200); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.05
  done
  return 1
}

S3_PORT="$(free_port)"
mkdir -p "$WORK/data/bench/db"
s3s-fs --host 127.0.0.1 --port "$S3_PORT" --access-key bench --secret-key bench-secret "$WORK/data" \
  >"$WORK/s3s-fs.log" 2>&1 &
S3_PID=$!
wait_port "$S3_PORT"
echo "bench-secret" >"$WORK/sk"

# PostgreSQL: initdb refuses root, so run it and the server as the postgres user then.
PG_PORT="$(free_port)"
echo "bench-pg-password" >"$WORK/pgpw"
mkdir -p "$WORK/pg/sock"
cp "$WORK/pgpw" "$WORK/pg/pw"
AS=()
if [ "$(id -u)" = 0 ]; then
  chmod 711 "$WORK"   # the postgres user must reach its directory
  chown -R postgres:postgres "$WORK/pg"
  AS=(setpriv --reuid=postgres --regid=postgres --init-groups)
fi
"${AS[@]}" "$PGBIN/initdb" -D "$WORK/pg/data" -U bench -A scram-sha-256 --pwfile="$WORK/pg/pw" \
  -E UTF8 --locale=C --no-sync >"$WORK/initdb.log" 2>&1
"${AS[@]}" "$PGBIN/postgres" -D "$WORK/pg/data" -c listen_addresses=127.0.0.1 -p "$PG_PORT" \
  -k "$WORK/pg/sock" -c fsync=off -c full_page_writes=off >"$WORK/pg.log" 2>&1 &
PG_PID=$!
wait_port "$PG_PORT"
sleep 1

cat >"$WORK/bench.yaml" <<EOF
name: restore-memory
secrets: {sk: {file: "$WORK/sk"}, pg: {file: "$WORK/pgpw"}}
schedule: {interval: 1h, timeout: 60m}
defaults: {timeout: 30m}
steps:
  - name: fetch
    s3: {endpoint: "http://127.0.0.1:$S3_PORT", bucket: bench, access_key_id: bench, secret_access_key: "\${{ secrets.sk }}", get: {newest: db/, checksum_sidecar: .sha256, decompress: true, keep: true}}
  - name: restore
    postgres:
      url: postgres://bench@127.0.0.1:$PG_PORT/postgres
      password: "\${{ secrets.pg }}"
      restore: {file: "\${{ steps.fetch.file }}"}
      query: select count(*) as n from public.blobs
    assert: ['jsonpath "\$[0].n" > 0']
EOF

printf '%-8s %12s %10s %10s\n' dump "peak RSS" wall apply
for mib in $SIZES; do
  rm -f "$WORK/data/bench/db/"*
  python3 - "$mib" >"$WORK/dump.sql" <<'PY'
import sys, hashlib
mib = int(sys.argv[1])
w = sys.stdout.write
w("--\n-- PostgreSQL database dump\n--\n\nCREATE TABLE public.blobs (id integer, data text);\n\n")
w("COPY public.blobs (id, data) FROM stdin;\n")
row, i, total = 0, 0, mib << 20
while total > 0:
    line = "%d\t%s\n" % (i, hashlib.sha256(str(i).encode()).hexdigest() * 15)
    w(line); total -= len(line); i += 1
w("\\.\n\n--\n-- PostgreSQL database dump complete\n--\n")
PY
  gzip -1 -c "$WORK/dump.sql" >"$WORK/data/bench/db/dump-$mib.sql.gz"
  (cd "$WORK/data/bench/db" && sha256sum "dump-$mib.sql.gz" >"dump-$mib.sql.gz.sha256")
  rm -f "$WORK/dump.sql"
  start=$(date +%s.%N)
  S3_SECRET=x "$BIN" run "$WORK/bench.yaml" --no-color --report "json=$WORK/report.json" >"$WORK/out.txt" 2>&1 &
  pid=$!
  peak=0
  while kill -0 "$pid" 2>/dev/null; do
    kib=$(awk '/^VmHWM:/ {print $2}' "/proc/$pid/status" 2>/dev/null || true)
    if [ -n "$kib" ] && [ "$kib" -gt "$peak" ]; then peak=$kib; fi
    sleep 0.005
  done
  if ! wait "$pid"; then cat "$WORK/out.txt" >&2; exit 1; fi
  end=$(date +%s.%N)
  apply=$(python3 -c 'import json,sys; r=json.load(open(sys.argv[1]))["runs"][0]["steps"][1]; print(next(p["duration"] for p in r["phases"] if p["name"]=="apply"))' "$WORK/report.json")
  printf '%-8s %9d KiB %9.2fs %9.2fs\n' "${mib}MiB" "$peak" "$(echo "$end - $start" | bc)" "$apply"
done
left=$(PGPASSWORD=bench-pg-password "$PGBIN/psql" -h 127.0.0.1 -p "$PG_PORT" -U bench -d postgres -Atc \
  "select count(*) from pg_database where datname like 'flowprobe_drill_%'")
echo "scratch databases left: $left"
