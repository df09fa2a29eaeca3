#!/usr/bin/env bash
# The README's test command: every test of the workspace, then what was *not* tested and why.
#
# cargo captures the output of passing tests, so a test that skipped its checks (no fixtures in
# ../shared/fixtures or $CRASHDROP_FIXTURES, no `crash`/`makedumpfile` installed) would look like
# any other pass. Each skip is appended to $CRASHDROP_SKIP_LOG (integration/src/tools.rs), and
# this script prints that list at the end. Under CI=true a skip is a failure instead.
#
# Arguments go to `cargo test` (e.g. `scripts/test.sh -- --ignored` for the heavy tests).
set -euo pipefail

cd "$(dirname "$0")/.."

skip_log=$(mktemp "${TMPDIR:-/tmp}/crashdrop-skips.XXXXXX")
trap 'rm -f "$skip_log"' EXIT
export CRASHDROP_SKIP_LOG="$skip_log"

status=0
cargo test --workspace --no-fail-fast "$@" || status=$?

if [ -s "$skip_log" ]; then
    count=$(sort -u "$skip_log" | wc -l)
    printf '\n%s checks were SKIPPED, so this run did not test them:\n' "$count"
    sort -u "$skip_log" | sed 's/^/  - /'
    printf '%s\n' \
        "Install what is missing (apt-get install crash makedumpfile) and point CRASHDROP_FIXTURES" \
        "at a folder of real dumps (README: Real dumps to test with) to run them."
else
    printf '\nNo test skipped its checks.\n'
fi
exit "$status"
