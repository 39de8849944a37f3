#!/usr/bin/env bash
# Prints the totals of the last `scripts/test.sh` run as one line: "tests: N passed, N failed".
set -euo pipefail
cd "$(dirname "$0")/.."
awk '/^test result:/ { passed += $4; failed += $6 }
     END { printf "tests: %d passed, %d failed\n", passed, failed }' target/test-output.log
