#!/usr/bin/env bash
# HTTP benchmark of the MD Creator server on Postgres, beside pgbench -S on the same Postgres.
#
#   bench/http/run.sh                      # build, run, print the table, clean up
#   CONCURRENCY="16" DURATION=10 bench/http/run.sh
#
# Environment (all optional):
#   CONCURRENCY   space-separated list            default "16 64"
#   DURATION      recorded seconds per run        default 20
#   WARMUP        unrecorded seconds before each  default 3
#   DOCUMENTS     documents for GET (≥ concurrency is enforced; PUT uses one per task)  default 100
#   DOC_BYTES     Markdown bytes per document     default 4096
#   CLIENT_THREADS  tokio workers of the load generator  default 1
#   PUT_SPREAD=0  skip the extra PUT run with one workspace per task (default 1: run it)
#   PGHOST PGPORT PGUSER   Postgres (trust auth)  default 127.0.0.1 5432 postgres
#   DB_SSLMODE    sslmode for the server and pgbench (e.g. disable)  default: unset = "prefer",
#                 which is TLS on a Postgres with ssl=on (Debian's default), for both sides alike
#   BENCH_LISTEN  where the server listens        default 127.0.0.1:18080 (not 8080: a dev server may be there)
#   BENCH_OUT     results directory               default /tmp/mdc-bench-<timestamp>
#   SKIP_BUILD=1  use the release binaries already built
#   SERVER_BIN BENCH_BIN  use these binaries instead (no build when both are given)
#   SERVER_REV    what to call the server build in the summary   default: this tree's git revision
#   CARGO_TARGET_DIR  default $HOME/.cache/mdcreator-target
#
# Needs: cargo, curl, jq, awk, sort, createdb/dropdb/psql/pgbench, Linux /proc.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/mdcreator-target}
CONCURRENCY=${CONCURRENCY:-"16 64"}
DURATION=${DURATION:-20}
WARMUP=${WARMUP:-3}
DOCUMENTS=${DOCUMENTS:-100}
DOC_BYTES=${DOC_BYTES:-4096}
CLIENT_THREADS=${CLIENT_THREADS:-1}
export PGHOST=${PGHOST:-127.0.0.1} PGPORT=${PGPORT:-5432} PGUSER=${PGUSER:-postgres}
DB_SSLMODE=${DB_SSLMODE:-}
DB_QUERY=
if [ -n "$DB_SSLMODE" ]; then
    export PGSSLMODE=$DB_SSLMODE
    DB_QUERY="?sslmode=$DB_SSLMODE"
fi
LISTEN=${BENCH_LISTEN:-127.0.0.1:18080}
TS=$(date -u +%Y%m%d%H%M%S)
OUT=${BENCH_OUT:-/tmp/mdc-bench-$TS}
DB=mdc_bench_$TS
PGB_DB=mdc_bench_${TS}_pgbench
BASE=http://$LISTEN
mkdir -p "$OUT"

log() { printf '[%s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

# ---- CPU accounting (Linux /proc; clock ticks, 100 per second) --------------------------------
TICKS=$(getconf CLK_TCK 2>/dev/null || echo 100)
proc_ticks() { # utime+stime of one process
    local s
    s=$(cat "/proc/$1/stat" 2>/dev/null) || { echo 0; return; }
    set -- ${s##*) }
    echo $((${12} + ${13}))
}
pg_ticks() { # every postgres process, plus what the postmaster reaped from exited backends
    local total=0 pid s
    for pid in $(pgrep -x postgres || true); do
        s=$(cat "/proc/$pid/stat" 2>/dev/null) || continue
        set -- ${s##*) }
        total=$((total + ${12} + ${13}))
        [ "$(cat "/proc/$2/comm" 2>/dev/null)" = postgres ] || total=$((total + ${14} + ${15}))
    done
    echo $total
}
machine_busy_ticks() { # all CPUs, everyone: not idle, not iowait
    awk '/^cpu /{print $2+$3+$4+$7+$8+$9; exit}' /proc/stat
}
secs() { awk -v t="$1" -v h="$TICKS" 'BEGIN{printf "%.1f", t/h}'; }

# ---- build -------------------------------------------------------------------------------------
if [ -n "${SERVER_BIN:-}" ] && [ -n "${BENCH_BIN:-}" ]; then
    SKIP_BUILD=1
fi
if [ "${SKIP_BUILD:-0}" != 1 ]; then
    log "building release binaries (cold: ~15 min on 2 cores)"
    cargo build --release -p mdcreator-server -p mdcreator-bench-http
fi
SERVER_BIN=${SERVER_BIN:-$CARGO_TARGET_DIR/release/mdcreator}
BENCH_BIN=${BENCH_BIN:-$CARGO_TARGET_DIR/release/mdcreator-bench-http}
GIT_REV=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
git diff --quiet HEAD 2>/dev/null || GIT_REV="$GIT_REV+uncommitted changes"
GIT_REV=${SERVER_REV:-$GIT_REV}
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
[ -x "$SERVER_BIN" ] && [ -x "$BENCH_BIN" ] || { log "missing $SERVER_BIN or $BENCH_BIN"; exit 1; }

if curl -s -o /dev/null --max-time 1 "$BASE/healthz"; then
    log "something already answers on $LISTEN; set BENCH_LISTEN"
    exit 1
fi

# ---- cleanup, whatever happens -------------------------------------------------------------------
SERVER_PID=
cleanup() {
    if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.2; done
        kill -KILL "$SERVER_PID" 2>/dev/null || true
    fi
    dropdb --if-exists --force "$DB" 2>/dev/null || true
    dropdb --if-exists --force "$PGB_DB" 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- the server --------------------------------------------------------------------------------
createdb "$DB"
log "server on $LISTEN, database $DB, results in $OUT"
DATABASE_URL="postgres://$PGUSER@$PGHOST:$PGPORT/$DB$DB_QUERY" \
MDCREATOR_LISTEN=$LISTEN \
MDCREATOR_AUTO_MIGRATE=true \
MDCREATOR_REQUESTS_PER_MINUTE=100000000 \
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

# rows of the result table: conc|workload|rate|p50|p90|p99|max|avg|errors|server_cpu|pg_cpu|client_cpu|machine_cpu|wall
ROWS=$OUT/rows.txt
: >"$ROWS"

PUT_SPREAD=${PUT_SPREAD:-1}
for c in $CONCURRENCY; do
    docs=$(( c > DOCUMENTS ? c : DOCUMENTS ))
    runs="get:1 put:1"
    [ "$PUT_SPREAD" = 1 ] && runs="$runs put:$c"
    for run in $runs; do
        mode=${run%%:*} ws=${run##*:}
        name=ours-$mode-c$c
        if [ "$mode" = put ] && [ "$ws" != 1 ]; then name=$name-ws$ws; label="ours PUT, one workspace per task"
        elif [ "$mode" = put ]; then label="ours PUT /documents/{id}/content"
        else label="ours GET /documents/{id}"; fi
        log "ours: $mode, concurrency $c, $ws workspace(s), ${WARMUP}s warm-up + ${DURATION}s"
        s0=$(proc_ticks "$SERVER_PID"); p0=$(pg_ticks); m0=$(machine_busy_ticks); w0=$(date +%s.%N)
        "$BENCH_BIN" --base "$BASE" --mode "$mode" --concurrency "$c" \
            --duration-secs "$DURATION" --warmup-secs "$WARMUP" --workspaces "$ws" \
            --documents "$docs" --doc-bytes "$DOC_BYTES" --client-threads "$CLIENT_THREADS" \
            --json "$OUT/$name.json" | tee "$OUT/$name.txt" >&2
        s1=$(proc_ticks "$SERVER_PID"); p1=$(pg_ticks); m1=$(machine_busy_ticks); w1=$(date +%s.%N)
        # CPU is sampled around setup + warm-up + measurement; the client reports its own load-phase CPU.
        jq -r --arg c "$c" --arg l "$label" \
            --arg s "$(secs $((s1 - s0)))" --arg p "$(secs $((p1 - p0)))" --arg m "$(secs $((m1 - m0)))" \
            --arg wall "$(awk -v a="$w0" -v b="$w1" 'BEGIN{printf "%.1f", b-a}')" \
            '[$c, $l, (.requests_per_sec | floor), .latency_us.p50, .latency_us.p90, .latency_us.p99,
              .latency_us.max, (.latency_us.mean | floor), .errors, $s, $p,
              ((.client_cpu_secs // 0) * 10 | round / 10 | if . == floor then "\(.).0" else . end), $m, $wall]
             | map(tostring) | join("|")' "$OUT/$name.json" >>"$ROWS"
    done
done

SERVER_TICKS=$(( $(proc_ticks "$SERVER_PID") ))
SERVER_HWM=$(awk '/^VmHWM/{print $2 " " $3}' "/proc/$SERVER_PID/status")
SERVER_RSS=$(awk '/^VmRSS/{print $2 " " $3}' "/proc/$SERVER_PID/status")
kill -TERM "$SERVER_PID"
wait "$SERVER_PID" 2>/dev/null || true
SERVER_PID=
log "server stopped: peak RSS (VmHWM) $SERVER_HWM, RSS at end $SERVER_RSS, CPU $(secs "$SERVER_TICKS") s in all"

# ---- pgbench on its own database ---------------------------------------------------------------
createdb "$PGB_DB"
log "pgbench -i -s 10 $PGB_DB"
pgbench -i -s 10 -q "$PGB_DB" >"$OUT/pgbench-init.txt" 2>&1
for c in $CONCURRENCY; do
    log "pgbench -S -c $c -j 2: ${WARMUP}s warm-up + ${DURATION}s"
    pgbench -S -c "$c" -j 2 -T "$WARMUP" "$PGB_DB" >/dev/null 2>&1 || true
    rm -f "$OUT/pgb-c$c".*
    p0=$(pg_ticks); m0=$(machine_busy_ticks); w0=$(date +%s.%N)
    TIMEFORMAT='%U %S'
    { time pgbench -S -c "$c" -j 2 -T "$DURATION" -l --log-prefix="$OUT/pgb-c$c" "$PGB_DB" \
        >"$OUT/pgbench-c$c.txt" 2>"$OUT/pgbench-c$c.err"; } 2>"$OUT/pgbench-c$c.time"
    p1=$(pg_ticks); m1=$(machine_busy_ticks); w1=$(date +%s.%N)
    tps=$(awk '/^tps = /{print $3; exit}' "$OUT/pgbench-c$c.txt")
    avg_ms=$(awk '/^latency average = /{print $4; exit}' "$OUT/pgbench-c$c.txt")
    failed=$(awk '/^number of failed transactions: /{print $5; exit}' "$OUT/pgbench-c$c.txt")
    # per-transaction log: client_id tx_no latency_us script_no epoch_s epoch_us
    cat "$OUT/pgb-c$c".* | awk '{print $3}' | sort -n >"$OUT/pgbench-c$c.latencies"
    read -r p50 p90 p99 max < <(awk '
        function at(p,  i) { i = int(p * NR); if (i < p * NR) i++; if (i < 1) i = 1; return a[i] + 0 }
        { a[NR] = $1 }
        END { printf "%d %d %d %d\n", at(0.50), at(0.90), at(0.99), a[NR] + 0 }' "$OUT/pgbench-c$c.latencies")
    rm -f "$OUT/pgb-c$c".*
    client=$(awk '{printf "%.1f", $1+$2}' "$OUT/pgbench-c$c.time")
    echo "$c|pgbench -S (SELECT by key)|$(awk -v t="$tps" 'BEGIN{printf "%d", t}')|$p50|$p90|$p99|$max|$(awk -v a="$avg_ms" 'BEGIN{printf "%d", a*1000}')|${failed:-0}|-|$(secs $((p1 - p0)))|$client|$(secs $((m1 - m0)))|$(awk -v a="$w0" -v b="$w1" 'BEGIN{printf "%.1f", b-a}')" >>"$ROWS"
done

# ---- the table ---------------------------------------------------------------------------------
{
    echo "MD Creator HTTP benchmark, $(date -u +%Y-%m-%dT%H:%MZ), server $SERVER_BIN (tree $GIT_REV)"
    echo "$(nproc) CPUs shared by load generator, server and Postgres; load average before: $LOAD_BEFORE"
    echo "Postgres: $PGHOST:$PGPORT, sslmode ${DB_SSLMODE:-prefer (default)}, server pool ${MDCREATOR_DB_MAX_CONNECTIONS:-16} connections"
    echo "documents: $DOC_BYTES bytes; GET over max(concurrency, $DOCUMENTS) documents round-robin; PUT one document per task"
    echo "recorded ${DURATION}s after ${WARMUP}s warm-up; latencies in µs; CPU in seconds over the whole step (setup + warm-up + run)"
    echo
    printf '%-5s %-32s %9s %7s %7s %7s %8s %7s %6s %7s %7s %7s %7s %8s\n' \
        conc workload 'req|tx/s' p50 p90 p99 max avg errors srv_cpu pg_cpu cli_cpu all_cpu 'vs_pgb'
    awk -F'|' '
        { row[NR]=$0; if ($2 ~ /^pgbench/) pgb[$1]=$3 }
        END { for (i=1; i<=NR; i++) { split(row[i], f, "|");
            if (f[2] ~ /^pgbench/) ratio = "-"; else if (pgb[f[1]] > 0) ratio = sprintf("%.3f", f[3] / pgb[f[1]]); else ratio = "?";
            printf "%-5s %-32s %9s %7s %7s %7s %8s %7s %6s %7s %7s %7s %7s %8s\n",
                f[1], f[2], f[3], f[4], f[5], f[6], f[7], f[8], f[9], f[10], f[11], f[12], f[13], ratio } }' \
        <(sort -t'|' -k1,1n -s "$ROWS")
    echo
    echo "server: peak RSS (VmHWM) $SERVER_HWM, RSS at end $SERVER_RSS, CPU $(secs "$SERVER_TICKS") s over all runs"
    echo "vs_pgb = our req/s ÷ pgbench tps at the same concurrency; all_cpu = busy CPU of the whole machine (of $(nproc) × wall)"
} | tee "$OUT/summary.txt"
log "results in $OUT"
