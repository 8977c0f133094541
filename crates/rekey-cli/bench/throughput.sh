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
# runs `rekey rotate --all --concurrency C --json` per concurrency and prints
# rotations per second as the command itself measured them (wall clock of
# the rotations, excluding process start and config load).
set -euo pipefail
N=${1:-1000}
CONCURRENCIES=${2:-"1 32"}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
: "${REKEY_TEST_VAULT_ADDR:?start OpenBao: scripts/servers.sh start openbao; source its env}"
: "${REKEY_TEST_VAULT_TOKEN:?}"
cargo build --release -q -p rekey-cli --manifest-path "$ROOT/Cargo.toml"
BIN=$ROOT/target/release/rekey
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
  "$BIN" -c "$CFG" rotate --all --concurrency "$c" --json >"$DIR/out-$c.json"
  python3 - "$DIR/out-$c.json" "$c" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))["summary"]
print(f"concurrency {sys.argv[2]:>3}: {s['rotated']}/{s['total']} rotated, {s['failed']} failed, "
      f"{s['elapsed_ms']/1000:.2f} s, {s['per_second']:.0f} rotations/s")
PY
done
rm -rf "$DIR"
