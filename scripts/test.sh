#!/usr/bin/env bash
# The test command: installs what the tests need, then runs every test (unit, integration
# against real servers on 127.0.0.1, doc tests) and prints one closing count.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$HOME/.cargo/bin:$PATH"
mkdir -p target
cargo test --locked --features fault-injection "$@" 2>&1 | tee target/test-output.log
bash scripts/test-summary.sh
