#!/usr/bin/env bash
# Sender throughput on one core and its peak memory, as in a capture kernel with nr_cpus=1.
#
#   scripts/bench-sender.sh [VMCORE] [DUMP_LEVEL]
#
# Without VMCORE a synthetic 1 GiB vmcore is generated. The receiver runs pinned to CPU 1 with its
# store on tmpfs (/dev/shm) so that the figure is the sender's, not the receiver's disk; the
# sender runs pinned to CPU 0 under /usr/bin/time -v. Results: docs/benchmarks.md.
# BENCH_TRANSPORT=ssh sends over the receiver's built-in SSH server instead of TLS.
set -euo pipefail
cd "$(dirname "$0")/.."

level=${2:-1}
work=target/bench
bin=target/release
cargo build --release --bins --quiet
rm -rf "$work" && mkdir -p "$work"
# BENCH_STORE_ROOT: where the receiver's store goes (default tmpfs; use a disk for dumps whose
# stored size would not fit in RAM, e.g. the synthetic 64 GiB machine: about 20 GiB stored).
store=$(mktemp -d "${BENCH_STORE_ROOT:-/dev/shm}/crashdrop-bench-store.XXXXXX")
trap 'rm -rf "$store"; kill $receiver 2>/dev/null || true' EXIT

"$bin/crashdrop-certs" init --dir "$work/pki" --receiver-name 127.0.0.1 >/dev/null
"$bin/crashdrop-certs" host --dir "$work/pki" bench-host >/dev/null
vmcore=${1:-}
if [ -z "$vmcore" ]; then
    vmcore=$work/vmcore
    "$bin/crashdrop-send" --synthesize "$vmcore" --size "${BENCH_SIZE:-1GiB}"
fi
cat "$vmcore" >/dev/null # warm the page cache: measure CPU, not the disk the vmcore sits on

transport=${BENCH_TRANSPORT:-tls}
case $transport in
tls)
    taskset -c 1 "$bin/crashdropd" serve --store "$store" --tls-listen 127.0.0.1:0 \
        --tls-cert "$work/pki/receiver.pem" --tls-key "$work/pki/receiver.key" \
        --client-ca "$work/pki/ca.pem" >"$work/listening" 2>"$work/crashdropd.log" &
    ;;
ssh)
    "$bin/crashdrop-certs" ssh-host-key --dir "$work/ssh" >"$work/ssh-host-key.txt"
    "$bin/crashdrop-certs" ssh-client-key --dir "$work/ssh" bench-host >"$work/ssh-client-key.txt"
    grep '^crashdrop-host=' "$work/ssh-client-key.txt" >"$work/ssh/authorized_keys"
    server_key=$(sed -n "s/^  --server-key '\(.*\)'\$/\1/p" "$work/ssh-host-key.txt")
    taskset -c 1 "$bin/crashdropd" serve --store "$store" --ssh-listen 127.0.0.1:0 \
        --ssh-host-key "$work/ssh/ssh_host_ed25519_key" \
        --ssh-authorized-keys "$work/ssh/authorized_keys" >"$work/listening" 2>"$work/crashdropd.log" &
    ;;
*)
    echo "BENCH_TRANSPORT must be tls or ssh, not $transport" >&2
    exit 2
    ;;
esac
receiver=$!
for _ in $(seq 100); do grep -q "^listening $transport " "$work/listening" 2>/dev/null && break; sleep 0.1; done
addr=$(sed -n "s/^listening $transport //p" "$work/listening" | head -1)

if [ "$transport" = tls ]; then
    credentials=(--receiver "tls://$addr" --ca "$work/pki/ca.pem" --cert "$work/pki/bench-host.pem"
        --key "$work/pki/bench-host.key")
else
    credentials=(--receiver "ssh://$addr" --identity "$work/ssh/bench-host.ssh" --server-key "$server_key")
fi
taskset -c 0 /usr/bin/time -v "$bin/crashdrop-send" "${credentials[@]}" \
    --vmcore "$vmcore" --dump-level "$level" 2>"$work/sender.txt"
grep -E '^(sending|dump complete)' "$work/sender.txt"
tail -n +1 "$work/sender.txt" | grep -E 'sent .*100%' | tail -1
grep -E 'Elapsed|Maximum resident|User time|System time' "$work/sender.txt"
"$bin/crashdropd" list --store "$store"
