#!/usr/bin/env bash
# The main job: starts a real local stack on 127.0.0.1 (nginx ingress with TLS, test backends,
# and the other services the example scenarios use), runs every scenario in scenarios/ with
# `flowprobe run`, writes reports to target/demo/, and stops the stack.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$HOME/.cargo/bin:$PATH"
cargo build --locked --quiet --bin flowprobe
cargo run --locked --quiet --example demo -- "$@"
