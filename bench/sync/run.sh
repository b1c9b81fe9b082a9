#!/usr/bin/env bash
# Sync benchmark of the MD Creator server on Postgres (release build): push throughput of
# 500-mutation batches, pull latency for 10,000 changes, poke-to-pull latency over SSE.
#
#   bench/sync/run.sh                       # build, run, print, clean up
#   CHANGES=2000 SKIP_BUILD=1 bench/sync/run.sh
#
# Environment (all optional):
#   CHANGES BATCH PAGE REPEATS POKES DOC_BYTES   passed to the binary (defaults 10000 500 1000 5 50 1024)
#   PGHOST PGPORT PGUSER   Postgres (trust auth)        default 127.0.0.1 5432 postgres
#   REDIS_URL              fan-out through Redis (as in production) when set
#   BENCH_LISTEN           where the server listens     default 127.0.0.1:18081
#   BENCH_OUT              results directory            default /tmp/mdc-bench-sync-<timestamp>
#   SKIP_BUILD=1           use the release binaries already built
#   CARGO_TARGET_DIR       default $HOME/.cache/mdcreator-target
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/mdcreator-target}
export PGHOST=${PGHOST:-127.0.0.1} PGPORT=${PGPORT:-5432} PGUSER=${PGUSER:-postgres}
LISTEN=${BENCH_LISTEN:-127.0.0.1:18081}
TS=$(date -u +%Y%m%d%H%M%S)
OUT=${BENCH_OUT:-/tmp/mdc-bench-sync-$TS}
DB=mdc_bench_sync_$TS
BASE=http://$LISTEN
mkdir -p "$OUT"
log() { printf '[%s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

if [ "${SKIP_BUILD:-0}" != 1 ]; then
    log "building release binaries"
    cargo build --release -p mdcreator-server -p mdcreator-bench-sync
fi
SERVER_BIN=$CARGO_TARGET_DIR/release/mdcreator
BENCH_BIN=$CARGO_TARGET_DIR/release/mdcreator-bench-sync
[ -x "$SERVER_BIN" ] && [ -x "$BENCH_BIN" ] || { log "missing $SERVER_BIN or $BENCH_BIN"; exit 1; }
if curl -s -o /dev/null --max-time 1 "$BASE/healthz"; then
    log "something already answers on $LISTEN; set BENCH_LISTEN"
    exit 1
fi

SERVER_PID=
cleanup() {
    if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.2; done
        kill -KILL "$SERVER_PID" 2>/dev/null || true
    fi
    dropdb --if-exists --force "$DB" 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

createdb "$DB"
log "server on $LISTEN, database $DB${REDIS_URL:+, Redis $REDIS_URL}, results in $OUT"
DATABASE_URL="postgres://$PGUSER@$PGHOST:$PGPORT/$DB" \
MDCREATOR_LISTEN=$LISTEN \
MDCREATOR_AUTO_MIGRATE=true \
MDCREATOR_REQUESTS_PER_MINUTE=100000000 \
MDCREATOR_MAX_JSON_BYTES=$((2 * 1024 * 1024)) \
MDCREATOR_LOG_FORMAT=json \
MDCREATOR_DATA_DIR="$OUT/data" \
RUST_LOG=warn \
    "$SERVER_BIN" serve >"$OUT/server.log" 2>&1 &
SERVER_PID=$!
for i in $(seq 300); do
    curl -sf -o /dev/null --max-time 1 "$BASE/healthz" && break
    kill -0 "$SERVER_PID" 2>/dev/null || { log "server died:"; tail -20 "$OUT/server.log" >&2; exit 1; }
    [ "$i" = 300 ] && { log "server not healthy after 60 s"; exit 1; }
    sleep 0.2
done

"$BENCH_BIN" --base "$BASE" \
    --changes "${CHANGES:-10000}" --batch "${BATCH:-500}" --page "${PAGE:-1000}" \
    --repeats "${REPEATS:-5}" --pokes "${POKES:-50}" --doc-bytes "${DOC_BYTES:-1024}" \
    | tee "$OUT/summary.txt"
log "server peak RSS: $(awk '/^VmHWM/{print $2 " " $3}' "/proc/$SERVER_PID/status")"
log "results in $OUT"
