#!/usr/bin/env bash
# `rekey rotate --all` throughput on N secrets against a local OpenBao, at
# the given concurrencies (release build).
#
#   REKEY_TEST_STATE=/tmp/rekey-bench scripts/servers.sh start openbao
#   source /tmp/rekey-bench/env
#   crates/rekey-cli/bench/throughput.sh [N=1000] [CONCURRENCIES="1 32"]
#
# Seeds N text secrets under a fresh prefix (plain HTTP, not rekey), writes a
# config with one [[secret]] each (staged strategy, random 32-char values),
# and per concurrency C:
#   * measures the server's raw KV v2 write rate at C requests in flight
#     (examples/kv_write_rate.rs: N plain POSTs over one keep-alive client);
#   * runs `rekey rotate --all --concurrency C --json`;
# then prints calls per rotation (the store requests the command counted),
# rotations/s (as the command measured them: wall clock of the rotations,
# excluding process start and config load), and the ratio
#   rotations/s ÷ (raw writes/s ÷ calls per rotation)
# — 1.0 means rotations run as fast as the server takes that many plain
# writes (issue 12's goal is ≥ 0.8 of raw rate ÷ minimum calls).
set -euo pipefail
N=${1:-1000}
CONCURRENCIES=${2:-"1 32"}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
: "${REKEY_TEST_VAULT_ADDR:?start OpenBao: scripts/servers.sh start openbao; source its env}"
: "${REKEY_TEST_VAULT_TOKEN:?}"
cargo build --release -q -p rekey-cli --bin rekey --example kv_write_rate --manifest-path "$ROOT/Cargo.toml"
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=$TARGET/release/rekey
RAW=$TARGET/release/examples/kv_write_rate
DIR=$(mktemp -d)
PREFIX="bench-$(date +%s)-$$"
CFG=$DIR/rekey.toml
{
  printf '[store]\ntype = "vault"\naddress = "%s"\nmount = "secret"\n\n' "$REKEY_TEST_VAULT_ADDR"
  printf '[policies.bench]\nschedule = "every 30d"\nstrategy = "staged"\n\n'
  for i in $(seq 1 "$N"); do
    printf '[[secret]]\npath = "%s/s%05d"\npolicy = "bench"\n' "$PREFIX" "$i"
  done
} >"$CFG"
echo "seeding $N secrets under secret/$PREFIX ..." >&2
seq 1 "$N" | xargs -P 16 -I{} sh -c \
  'curl -sf -o /dev/null -H "X-Vault-Token: $REKEY_TEST_VAULT_TOKEN" -X POST \
     -d "{\"data\":{\"value\":\"seed-value-{}\"}}" \
     "$REKEY_TEST_VAULT_ADDR/v1/secret/data/'"$PREFIX"'/s$(printf %05d {})"'
export VAULT_TOKEN=$REKEY_TEST_VAULT_TOKEN
for c in $CONCURRENCIES; do
  "$RAW" "$N" "$c" "$PREFIX-raw-$c" >"$DIR/raw-$c.txt"
  "$BIN" -c "$CFG" rotate --all --concurrency "$c" --json >"$DIR/out-$c.json"
  python3 - "$DIR/out-$c.json" "$DIR/raw-$c.txt" "$c" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))["summary"]
raw = dict(kv.split("=") for kv in open(sys.argv[2]).read().split())
raw_rate = float(raw["per_second"])
calls = s["store_calls_per_rotation"]
rps = s["per_second"]
bound = raw_rate / calls if calls else float("nan")
print(f"concurrency {sys.argv[3]:>3}: {s['rotated']}/{s['total']} rotated, {s['failed']} failed, "
      f"{s['elapsed_ms']/1000:.2f} s; {calls:.2f} calls/rotation, {rps:.0f} rotations/s; "
      f"raw KV writes {raw_rate:.0f}/s -> {bound:.0f} rotations/s at that many calls; "
      f"ratio {rps / bound:.2f}")
PY
done
rm -rf "$DIR"
