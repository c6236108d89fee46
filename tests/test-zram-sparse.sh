#!/usr/bin/env bash
# The slot table costs memory only where blocks are stored: an empty 1 TiB
# disk (mapped end to end with nbdinfo --map, and read at scattered
# places) and a 64 GiB disk holding 100 MiB stay small in nbdkit's RSS.
source "$top_srcdir/tests/functions.sh"
source "$top_srcdir/tests/plugin-functions.sh"
need_tool nbdkit nbdsh nbdinfo

rss_kib () { awk '/^VmRSS:/ {print $2}' /proc/"$1"/status; }
M=$((1024 * 1024))

start_zram size=1T
timeout 120 nbdinfo --map "$uri" > "$tmpdir/map"
[ "$(cat "$tmpdir/map" | awk '{print $1, $2, $3}')" = "0 1099511627776 3" ] ||
    { cat "$tmpdir/map"; fail "an empty 1 TiB disk is not one hole"; }
nbdsh_py '
for i in range(256):
    assert h.pread(65536, i * (1 << 32) + 12345) == bytes(65536)
    h.trim(1 << 20, i * (1 << 32))
    h.zero(1 << 20, i * (1 << 32) + (1 << 30))
'
rss=$(rss_kib "$nbdkit_pid")
echo "empty 1 TiB disk: VmRSS $rss KiB"
[ "$rss" -lt $((64 * 1024)) ] || fail "VmRSS $rss KiB for an empty 1 TiB disk"
stop_nbdkit "$nbdkit_pid"

# 100 MiB of C headers in 1 MiB pieces, 640 MiB apart over 64 GiB.
cat /usr/include/*.h /usr/include/*/*.h 2>/dev/null | head -c $M > "$tmpdir/text"
start_zram size=64G
export tmpdir
nbdsh_py '
import os
d = open(os.environ["tmpdir"] + "/text", "rb").read()
for i in range(100):
    h.pwrite(d, i * 640 * (1 << 20))
assert h.pread(len(d), 99 * 640 * (1 << 20)) == d
'
rss=$(rss_kib "$nbdkit_pid")
echo "64 GiB disk holding 100 MiB: VmRSS $rss KiB"
# The data compresses to about 25 MiB; the table holds 25600 slots (400
# KiB); nbdkit, libraries and buffers are the rest.
[ "$rss" -lt $((128 * 1024)) ] || fail "VmRSS $rss KiB"
