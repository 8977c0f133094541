#!/usr/bin/env bash
# Scale bench (issue 12): N secrets (default 10,000) in one store.
#
#   REKEY_TEST_STATE=/tmp/rekey-bench scripts/servers.sh start openbao moto
#   source /tmp/rekey-bench/env
#   crates/rekey-cli/bench/scale.sh [N=10000] [STORE=vault|aws] [IDLE_SECS=40]
#   REKEY_TEST_STATE=/tmp/rekey-bench scripts/servers.sh stop
#
# Prints, each measured in this run (release build of `rekey`):
#   1. seeding time (plain HTTP / boto3, not rekey);
#   2. `rekey rotate --all --concurrency 32`: wall time, rotations/s, store
#      calls per rotation (from the JSON summary) and the process's peak RSS
#      (/usr/bin/time);
#   3. `rekey status` over all N secrets: wall time, best of 3 (goal on
#      OpenBao: <= 2 s), and on OpenBao its ratio to the raw floor measured
#      in the same run, best of 3, interleaved: the same one request per
#      secret (a KV v2 metadata GET), at the same concurrency (64) on the
#      same kind of runtime (one thread) and HTTP stack (reqwest), with no
#      rekey code (crates/rekey-vault/examples/raw_reads.rs);
#   4. `rekey run` with N schedules none of which is due: store calls while
#      it starts (one read per secret to schedule it), then over IDLE_SECS of
#      idle ticks, split into calls made by resyncs and calls outside them
#      (goal: none outside them), read from /metrics
#      (`rekey_store_requests_total`), of which the periodic recheck's reads
#      (`rekey_rechecks_total`: N per `recheck_interval`, default 1h, spread
#      over it), plus the daemon's peak RSS.
set -euo pipefail
N=${1:-10000}
STORE=${2:-vault}
IDLE_SECS=${3:-40}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
TIME=/usr/bin/time
[ -x "$TIME" ] || { echo "scale.sh needs GNU time at /usr/bin/time (Debian package 'time')" >&2; exit 2; }

cargo build --release -q -p rekey-cli --manifest-path "$ROOT/Cargo.toml"
cargo build --release -q -p rekey-vault --example raw_reads --manifest-path "$ROOT/Cargo.toml"
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/rekey
RAW=${CARGO_TARGET_DIR:-$ROOT/target}/release/examples/raw_reads
DIR=$(mktemp -d)
PREFIX="scale-$(date +%s)-$$"
CFG=$DIR/rekey.toml
PORT=$((20000 + RANDOM % 20000))

case $STORE in
  vault)
    : "${REKEY_TEST_VAULT_ADDR:?start OpenBao: scripts/servers.sh start openbao; source its env}"
    export VAULT_TOKEN=$REKEY_TEST_VAULT_TOKEN
    printf '[store]\ntype = "vault"\naddress = "%s"\nmount = "secret"\n\n' "$REKEY_TEST_VAULT_ADDR" >"$CFG"
    ;;
  aws)
    : "${REKEY_TEST_AWS_ENDPOINT:?start moto: scripts/servers.sh start moto; source its env}"
    export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_DEFAULT_REGION=us-east-1
    printf '[store]\ntype = "aws"\nregion = "us-east-1"\nendpoint_url = "%s"\n\n' "$REKEY_TEST_AWS_ENDPOINT" >"$CFG"
    ;;
  *) echo "STORE must be vault or aws" >&2; exit 2 ;;
esac
{
  printf '[policies.bench]\nschedule = "every 30d"\nstrategy = "staged"\n\n'
  printf '[daemon]\nlisten = "127.0.0.1:%s"\nresync_interval = "10s"\nmax_concurrency = 32\n\n' "$PORT"
  for i in $(seq 1 "$N"); do
    printf '[[secret]]\npath = "%s/s%05d"\npolicy = "bench"\n' "$PREFIX" "$i"
  done
} >>"$CFG"

echo "== $N secrets on $STORE (prefix $PREFIX)"
start=$(date +%s.%N)
if [ "$STORE" = vault ]; then
  seq 1 "$N" | xargs -P 32 -n 50 sh -c '
    for i in "$@"; do
      curl -sf -o /dev/null -H "X-Vault-Token: $REKEY_TEST_VAULT_TOKEN" -X POST \
        -d "{\"data\":{\"value\":\"seed-value-$i\"}}" \
        "$REKEY_TEST_VAULT_ADDR/v1/secret/data/'"$PREFIX"'/s$(printf %05d "$i")"
    done' sh
else
  PY=${REKEY_TOOLS_DIR:-$HOME/.cache/rekey-test-tools}/moto-venv/bin/python
  "$PY" - "$N" "$PREFIX" "$REKEY_TEST_AWS_ENDPOINT" <<'PY'
import sys, boto3
from concurrent.futures import ThreadPoolExecutor
n, prefix, url = int(sys.argv[1]), sys.argv[2], sys.argv[3]
c = boto3.client("secretsmanager", endpoint_url=url, region_name="us-east-1")
def create(i):
    c.create_secret(Name=f"{prefix}/s{i:05d}", SecretString=f"seed-value-{i}")
with ThreadPoolExecutor(16) as ex:
    list(ex.map(create, range(1, n + 1)))
PY
fi
printf 'seeded in %.1f s\n' "$(echo "$(date +%s.%N) - $start" | bc)"

# 2. rotate --all
"$TIME" -f '%e %M' -o "$DIR/rotate.time" "$BIN" -c "$CFG" rotate --all --concurrency 32 --json >"$DIR/rotate.json" || true
python3 - "$DIR/rotate.json" "$DIR/rotate.time" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))["summary"]
wall, rss_kb = open(sys.argv[2]).read().split()[-2:]
calls = s.get("store_calls_per_rotation")
print(f"rotate --all --concurrency 32: {s['rotated']}/{s['total']} rotated, {s['failed']} failed, "
      f"{s['elapsed_ms']/1000:.1f} s of rotations ({s['per_second']:.0f}/s), process {float(wall):.1f} s, "
      f"peak RSS {int(rss_kb)/1024:.0f} MiB, store calls per rotation {calls}")
PY

# 3. status, best of 3, against the raw floor (vault), interleaved
best() { sort -n | head -1; }
for round in 1 2 3; do
  "$TIME" -f '%e %M' -o "$DIR/status.time" "$BIN" -c "$CFG" status --json >"$DIR/status.json" || true
  cat "$DIR/status.time" >>"$DIR/status.times"
  if [ "$STORE" = vault ]; then
    # 64 = STATUS_CONCURRENCY in crates/rekey-cli/src/commands/inspect.rs.
    REKEY_BENCH_RUNTIME=current "$RAW" "$PREFIX" "$N" 64 metadata | awk '{ print $6 }' >>"$DIR/raw.times"
  fi
done
python3 - "$DIR/status.json" "$N" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
bad = [s["path"] for s in d["secrets"] if s["error"] or not s["current_version"]]
assert len(d["secrets"]) == int(sys.argv[2]) and not bad, f"status: {len(bad)} rows without a version"
PY
wall=$(awk '{ print $1 }' "$DIR/status.times" | best)
rss=$(awk '{ print $2 }' "$DIR/status.times" | sort -n | tail -1)
echo "status on $N secrets: best of 3 ${wall} s (all: $(awk '{ printf "%s ", $1 }' "$DIR/status.times")s; goal <= 2 s), peak RSS $((rss / 1024)) MiB"
if [ "$STORE" = vault ]; then
  raw=$(best <"$DIR/raw.times")
  echo "raw floor: $N KV v2 metadata GETs, 64 in flight, one thread, no rekey: best of 3 ${raw} s" \
    "(all: $(tr '\n' ' ' <"$DIR/raw.times")s); status / raw = $(echo "scale=2; $wall / $raw" | bc)x"
fi

# 4. the daemon, nothing due
metric() {
  curl -sf "http://127.0.0.1:$PORT/metrics" | awk -v m="$1" 'index($0, m) == 1 { s += $NF } END { printf "%d", s }'
}
run_start=$(date +%s.%N)
"$TIME" -f '%M' -o "$DIR/run.time" "$BIN" -c "$CFG" run >"$DIR/run.log" 2>&1 &
RUN=$!
# $RUN is GNU time, which does not pass signals on: signal its child, rekey.
stop_run() { pkill -TERM -P "$RUN" 2>/dev/null || true; }
trap 'stop_run; rm -rf "$DIR"' EXIT
for _ in $(seq 1 600); do
  sched=$(metric rekey_scheduled_secrets 2>/dev/null || echo 0)
  [ "${sched:-0}" -ge "$N" ] && break
  sleep 0.2
done
printf 'run: start-up scheduled %s secrets in %.1f s (one snapshot each, max_concurrency in flight; polled every 0.2 s)\n' \
  "$sched" "$(echo "$(date +%s.%N) - $run_start" | bc)"
sleep 2
c0=$(metric rekey_store_requests_total)
r0=$(metric rekey_resyncs_total)
k0=$(metric rekey_rechecks_total)
echo "run: $sched schedules after $((SECONDS)) s of script time; store calls so far (start-up): $c0"
sleep "$IDLE_SECS"
c1=$(metric rekey_store_requests_total)
r1=$(metric rekey_resyncs_total)
k1=$(metric rekey_rechecks_total)
echo "run idle ${IDLE_SECS} s: $((c1 - c0)) store calls, $((r1 - r0)) resyncs" \
  "($(( (r1 - r0) > 0 ? (c1 - c0) / (r1 - r0) : 0 )) calls per resync);" \
  "recheck reads $((k1 - k0)) (N x ${IDLE_SECS} s / 1 h = $(( N * IDLE_SECS / 3600 )));" \
  "other calls $(( (c1 - c0) - (k1 - k0) ))"
stop_run
wait "$RUN" || true
echo "daemon peak RSS $(( $(cat "$DIR/run.time" | tail -1) / 1024 )) MiB"
