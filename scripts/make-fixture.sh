#!/usr/bin/env bash
# Makes a real kdump fixture for the tests when you do not have ../shared/fixtures/: boots a Debian
# kernel package in QEMU (TCG, no KVM needed), panics it, and saves the capture kernel's
# /proc/vmcore and its kernel log. Then: CRASHDROP_FIXTURES=OUT_DIR scripts/test.sh
#
#   scripts/make-fixture.sh linux-image-6.1.0-*-cloud-amd64_*_amd64.deb OUT_DIR [NAME]
#
# Needs: qemu-system-x86 busybox-static kexec-tools cpio zstd (apt-get install ...). The kernel
# must be an x86_64 Debian kernel whose package has the virtio modules (the cloud flavour does; the
# README's "Real dumps to test with" shows how to download one). Tests that run `crash`
# also want the matching debug vmlinux, OUT_DIR/kernel/vmlinux-RELEASE.zst (from the -dbg package).
set -euo pipefail

if [ $# -lt 2 ]; then
    sed -n '2,11s/^# \{0,1\}//p' "$0" >&2
    exit 2
fi
deb=$(realpath "$1")
out=$(realpath -m "$2")
cd "$(dirname "$0")/.."
export CRASHDROP_QEMU_ACCEL="${CRASHDROP_QEMU_ACCEL:-tcg}"
cargo run --quiet -p crashdrop-integration --example make_fixture -- "$deb" "$out" "${@:3}"
