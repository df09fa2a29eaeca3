#!/usr/bin/env bash
# The whole product in one command: build, make test certificates, start crashdropd on
# 127.0.0.1, send it a synthetic crash dump with crashdrop-send at the default dump level 31, then
# list and verify the result and print the end of the crashed kernel's log.
# Everything goes to target/demo/ (removed and recreated on each run).
set -euo pipefail
cd "$(dirname "$0")"

size=${DEMO_SIZE:-256MiB}
work=target/demo
bin=target/release

echo "== building (release; the first build takes about 8 minutes on 2 cores, later ones seconds)"
cargo build --release --bins
rm -rf "$work"
mkdir -p "$work"

echo "== certificates: a CA, the receiver (127.0.0.1, localhost) and one host, demo-host"
"$bin/crashdrop-certs" init --dir "$work/pki" --receiver-name 127.0.0.1 --receiver-name localhost
"$bin/crashdrop-certs" host --dir "$work/pki" demo-host

echo "== a synthetic vmcore of a $size machine"
"$bin/crashdrop-send" --synthesize "$work/vmcore" --size "$size"

echo "== starting crashdropd (log: $work/crashdropd.log)"
"$bin/crashdropd" serve --store "$work/store" --tls-listen 127.0.0.1:0 \
    --tls-cert "$work/pki/receiver.pem" --tls-key "$work/pki/receiver.key" \
    --client-ca "$work/pki/ca.pem" >"$work/listening" 2>"$work/crashdropd.log" &
receiver=$!
trap 'kill $receiver 2>/dev/null || true' EXIT
for _ in $(seq 100); do
    grep -q '^listening tls ' "$work/listening" 2>/dev/null && break
    kill -0 $receiver 2>/dev/null || { cat "$work/crashdropd.log"; exit 1; }
    sleep 0.1
done
addr=$(sed -n 's/^listening tls //p' "$work/listening" | head -1)
echo "crashdropd is listening on $addr"

echo "== sending it as demo-host"
"$bin/crashdrop-send" --receiver "tls://$addr" --ca "$work/pki/ca.pem" \
    --cert "$work/pki/demo-host.pem" --key "$work/pki/demo-host.key" \
    --vmcore "$work/vmcore" --dump-level 31

echo "== what the receiver stored"
"$bin/crashdropd" list --store "$work/store"
dump=$("$bin/crashdropd" list --store "$work/store" --json | sed -n 's/.*"location": "\(.*\)".*/\1/p' | head -1)
"$bin/crashdropd" verify --store "$work/store" "$dump"
echo "== the crashed kernel's last words (crashdropd dmesg, around the panic)"
"$bin/crashdropd" dmesg --store "$work/store" "$dump" | grep -B1 -A3 'Kernel panic'
echo "== done: the dump is $work/store/$dump/vmcore (kdump-compressed; open it with crash)"
