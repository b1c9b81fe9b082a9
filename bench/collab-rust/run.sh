#!/usr/bin/env bash
# Runs the shared y-websocket load harness (shared/bench/collab/bench.mjs) against the release
# MD Creator server, configs a to e (see shared/bench/collab/README.md), one at a time.
#
#   bench/collab-rust/run.sh            # a, b and c, REPS=1
#   CONFIGS="a" REPS=2 bench/collab-rust/run.sh
#   CONFIGS="d e" bench/collab-rust/run.sh   # the saturation ladders (a few minutes each)
#
# Each run starts a fresh server (SQLite in a temp dir: the embedded default, durable writes),
# signs up one user over the API, creates the rooms' documents, writes the ES256 access token to
# a --token-file and the ids to a --room-ids-file, and measures the server by pid.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
HARNESS_SRC="${HARNESS_SRC:-$ROOT/../shared/bench/collab}"
[ -d "$HARNESS_SRC" ] || HARNESS_SRC=/work/shared/bench/collab
WORK="${WORK:-$HOME/.cache/mdcreator-bench}"
OUT="${OUT:-$ROOT/bench/collab-rust/results}"
CONFIGS="${CONFIGS:-a b c}"
REPS="${REPS:-1}"
PORT="${PORT:-18080}"
NICE="${NICE:-0}"   # e.g. NICE=-10 (root) as in RESULTS.md, on a machine shared with builds
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/mdcreator-target}"
BIN="${BIN:-$CARGO_TARGET_DIR/release/mdcreator}"

# The shared harness is read-only: copy it and install its exact dependencies once.
mkdir -p "$WORK" "$OUT"
if [ ! -d "$WORK/collab/node_modules/y-websocket" ]; then
  rm -rf "$WORK/collab" && cp -r "$HARNESS_SRC" "$WORK/collab" && chmod -R u+w "$WORK/collab"
  (cd "$WORK/collab" && npm ci --omit=optional --no-audit --no-fund)
fi
[ -x "$BIN" ] || (cd "$ROOT" && cargo build --release -p mdcreator-server)

api() { curl -sf -H 'content-type: application/json' "$@"; }

run_one() {
  local config=$1 rep=$2 rooms args
  case $config in
    a) rooms=10;  args="--mode load --rooms 10 --clients 5 --rate 10 --duration 30" ;;
    b) rooms=1;   args="--mode load --rooms 1 --clients 50 --rate 2 --duration 30" ;;
    c) rooms=100; args="--mode capacity --rooms 100 --clients 10" ;;
    # Saturation ladders use fresh rooms per step: rooms × (max steps 12 + refine 3) documents.
    d) rooms=750; args="--mode saturate --rooms 50 --clients 4 --workers 2" ;;
    e) rooms=75;  args="--mode saturate --rooms 5 --clients 20 --workers 2" ;;
    # d's shape at one fixed rate (RATE ops/s per client; 16 = 3,200 ops/s), for profiles.
    f) rooms=50;  args="--mode load --rooms 50 --clients 4 --rate ${RATE:-16} --duration 30" ;;
    *) echo "unknown config $config"; exit 2 ;;
  esac
  local data; data="$(mktemp -d)"
  # PG=postgres://user@host:port: a fresh database per run on that server instead of SQLite.
  local db_env=() pg_db=""
  if [ -n "${PG:-}" ]; then
    pg_db="mdc_bench_$$_${config}_$rep"
    psql "$PG/postgres" -qc "DROP DATABASE IF EXISTS $pg_db" -qc "CREATE DATABASE $pg_db"
    db_env=(MDCREATOR_DATABASE_URL="$PG/$pg_db")
  fi
  env "${db_env[@]}" MDCREATOR_LISTEN="127.0.0.1:$PORT" MDCREATOR_DATA_DIR="$data" MDCREATOR_LOG_FORMAT=json \
      RUST_LOG=warn MDCREATOR_ACCESS_TOKEN_TTL_SECS=3600 MDCREATOR_REQUESTS_PER_MINUTE=100000 \
      nice -n "$NICE" "$BIN" serve >"$OUT/rust-$config-r$rep-server.log" 2>&1 &
  local pid=$!
  for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.1; done
  local base="http://127.0.0.1:$PORT/api/v1" email="bench-$RANDOM$RANDOM@example.com"
  api -X POST "$base/auth/signup" -d "{\"email\":\"$email\",\"password\":\"correct horse battery\",\"display_name\":\"Bench\"}" >/dev/null
  local token; token=$(api -X POST "$base/auth/login" -d "{\"email\":\"$email\",\"password\":\"correct horse battery\"}" | node -pe 'JSON.parse(require("fs").readFileSync(0)).access_token')
  local ws; ws=$(api -X POST "$base/workspaces" -H "authorization: Bearer $token" -d '{"name":"Bench"}' | node -pe 'JSON.parse(require("fs").readFileSync(0)).id')
  # The rooms' documents, eight requests at a time, ids one per line in creation order.
  BASE="$base" TOKEN="$token" WS="$ws" ROOMS="$rooms" node -e '
    const { BASE, TOKEN, WS, ROOMS } = process.env;
    const ids = new Array(Number(ROOMS));
    let next = 0;
    async function worker() {
      for (let i = next++; i < ids.length; i = next++) {
        const r = await fetch(`${BASE}/workspaces/${WS}/documents`, { method: "POST",
          headers: { "content-type": "application/json", authorization: `Bearer ${TOKEN}` },
          body: JSON.stringify({ title: `room ${i + 1}`, content: "" }) });
        if (!r.ok) throw new Error(`document ${i + 1}: HTTP ${r.status}`);
        ids[i] = (await r.json()).id;
      }
    }
    Promise.all(Array.from({ length: 8 }, worker)).then(() => console.log(ids.join("\n")));
  ' >"$data/rooms.txt"
  echo "$token" >"$data/token.txt"
  # The setup above (sign-up and login hash a password with Argon2, 19 MiB each) is not part of
  # the run: reset the server's peak RSS (VmHWM) to its current RSS before measuring.
  echo 5 >"/proc/$pid/clear_refs" 2>/dev/null || true
  # PERF=1: sample the server's stacks during the run (perf report -i the .data file);
  # PERF_OPTS="-F 199 --call-graph dwarf" for user-space stacks of a binary without frame pointers.
  local perf_pid=""
  if [ "${PERF:-0}" = 1 ]; then
    perf record ${PERF_OPTS:--F 499 -g} -p "$pid" -o "$OUT/rust-$config-r$rep.perf.data" >/dev/null 2>&1 &
    perf_pid=$!
  fi
  # PERFSTAT=1: count the server's CPU time, context switches and migrations over the run.
  local stat_pid=""
  if [ "${PERFSTAT:-0}" = 1 ]; then
    perf stat -e "${PERFSTAT_EVENTS:-task-clock,context-switches,cpu-migrations}" -p "$pid" -o "$OUT/rust-$config-r$rep.perfstat.txt" &
    stat_pid=$!
  fi
  (cd "$WORK/collab" && nice -n "$NICE" node bench.mjs --protocol y-websocket --url "ws://127.0.0.1:$PORT/ws/documents" \
      --token-file "$data/token.txt" --room-ids-file "$data/rooms.txt" --server-pid "$pid" \
      --wait-quiet "${WAIT_QUIET:-0}" $args --label "rust-$config-r$rep" --json "$OUT/rust-$config-r$rep.json" --out-dir "$OUT" ${EXTRA:-}) \
    | tee "$OUT/rust-$config-r$rep.txt" || true
  if [ -n "$stat_pid" ]; then kill -INT "$stat_pid" 2>/dev/null || true; wait "$stat_pid" 2>/dev/null || true; fi
  if [ -n "$perf_pid" ]; then kill -INT "$perf_pid" 2>/dev/null || true; wait "$perf_pid" 2>/dev/null || true; fi
  kill -TERM "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  rm -rf "$data"
  if [ -n "$pg_db" ]; then psql "$PG/postgres" -qc "DROP DATABASE IF EXISTS $pg_db WITH (FORCE)" || true; fi
}

for rep in $(seq 1 "$REPS"); do
  for config in $CONFIGS; do run_one "$config" "$rep"; done
done
(cd "$WORK/collab" && node summarize.mjs "$OUT"/rust-*.json) | tee "$OUT/summary.md"
