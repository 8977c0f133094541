#!/usr/bin/env bash
# Runs every test of the workspace against real servers.
#
# Installs what is missing (OpenBao, moto, PostgreSQL, Redis), starts each on a
# free loopback port in a throw-away directory, runs `cargo test` over the
# whole workspace with every feature, and stops the servers it started, also
# when the tests fail or are interrupted. Extra arguments go to `cargo test`.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
export REKEY_TEST_STATE=${REKEY_TEST_STATE:-$ROOT/.test-servers}

trap 'scripts/servers.sh stop' EXIT
# An interrupted run still stops its servers: signals become a normal exit.
trap 'exit 130' INT
trap 'exit 143' TERM
scripts/servers.sh start
# shellcheck disable=SC1091
source "$REKEY_TEST_STATE/env"
cargo test --workspace --all-features "$@"
