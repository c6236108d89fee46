#!/usr/bin/env bash
# qemu-img as another client: a qcow2 image converted onto the device,
# then qemu-img compare of the two.
source "$top_srcdir/tests/functions.sh"
source "$top_srcdir/tests/plugin-functions.sh"
need_tool nbdkit qemu-img

M=$((1024 * 1024))
raw=$tmpdir/image.raw
truncate -s $((32 * M)) "$raw"
cat /usr/include/*.h | head -c $((8 * M)) | dd of="$raw" conv=notrunc status=none
head -c $((2 * M)) /dev/urandom | dd of="$raw" bs=1M seek=12 conv=notrunc status=none
cat /usr/bin/qemu-img /usr/bin/nbdkit | head -c $((4 * M)) |
    dd of="$raw" bs=1M seek=20 conv=notrunc status=none
qemu-img convert -f raw -O qcow2 "$raw" "$tmpdir/image.qcow2"

start_zram size=32M
timeout 120 qemu-img convert -n -f qcow2 -O raw "$tmpdir/image.qcow2" "$uri" ||
    fail "qemu-img convert onto the device"
timeout 120 qemu-img compare -f qcow2 -F raw "$tmpdir/image.qcow2" "$uri" ||
    fail "qemu-img compare"
# And back out through qemu-img too.
timeout 120 qemu-img convert -f raw -O raw "$uri" "$tmpdir/back.raw" ||
    fail "qemu-img convert from the device"
cmp "$raw" "$tmpdir/back.raw" || fail "the copy back differs"
