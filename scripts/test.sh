#!/usr/bin/env bash
# The test command: installs what the tests need, then runs every test (unit, integration
# against real servers on 127.0.0.1, doc tests).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$HOME/.cargo/bin:$PATH"
cargo test --locked "$@"
