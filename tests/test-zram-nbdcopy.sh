#!/usr/bin/env bash
# Concurrency with nbdcopy: an image of text, ELF binaries, random data,
# zeroes and holes copied onto the device over four connections at once and
# back again over four more, compared byte for byte; the holes stay holes.
source "$top_srcdir/tests/functions.sh"
source "$top_srcdir/tests/plugin-functions.sh"
need_tool nbdkit nbdcopy nbdinfo cmp

M=$((1024 * 1024))
img=$tmpdir/image
truncate -s $((64 * M)) "$img"
# [0,16M) text, [16M,32M) hole, [32M,40M) ELF binaries, [40M,44M) random,
# [44M,48M) written zeroes, [48M,64M) hole.
cat /usr/include/*.h /usr/include/*/*.h 2>/dev/null | head -c $((16 * M)) |
    dd of="$img" conv=notrunc status=none
cat /usr/bin/nbdkit /usr/bin/qemu-img /usr/bin/fio /usr/lib/x86_64-linux-gnu/libc.so.6 \
    /usr/bin/* 2>/dev/null | head -c $((8 * M)) |
    dd of="$img" bs=1M seek=32 conv=notrunc status=none
head -c $((4 * M)) /dev/urandom | dd of="$img" bs=1M seek=40 conv=notrunc status=none
dd if=/dev/zero of="$img" bs=1M seek=44 count=4 conv=notrunc status=none

start_zram_logged size=64M
timeout 120 nbdcopy --connections=4 --threads=4 --requests=16 "$img" "$uri" ||
    fail "nbdcopy onto the device"
wait_close 4
timeout 120 nbdcopy --connections=4 --threads=4 --requests=16 "$uri" "$tmpdir/back" ||
    fail "nbdcopy from the device"
wait_close 4
cmp "$img" "$tmpdir/back" || fail "the copy differs"

# Holes where the image had holes (or zeroes): nothing stored there.
timeout 60 nbdinfo --map "$uri" | awk '$3 == 0 {print $1, $2}' > "$tmpdir/data"
wait_close
echo "data extents:"; cat "$tmpdir/data"
awk -v M=$M '($1 < 16*M && $1 + $2 > 16*M) || ($1 >= 16*M && $1 < 32*M) ||
             ($1 + $2 > 44*M) { bad = 1 } END { exit bad }' "$tmpdir/data" ||
    fail "data extents inside a hole"

# Nothing stored beyond the data: at most 28 MiB of the 64.
orig=$(stat_of orig_data_size)
[ "$orig" -le $((28 * M)) ] || fail "orig_data_size $orig"
[ "$(stat_of huge_pages)" -ge 1000 ] || fail "the random MiBs are not huge pages"
[ "$(stat_of failed_writes)" = 0 ] && [ "$(stat_of failed_reads)" = 0 ] ||
    fail "failed I/O"
echo "mm_stat: $(last_mm_stat)"
