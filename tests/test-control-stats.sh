#!/bin/bash
# The statistics follow real I/O exactly: mm_stat's orig_data_size,
# same_pages and huge pages after a known write pattern; io_stat's
# notify_free after trims; stat's request and sector counts.  Then compact
# lowers mem_used_total after half the data is trimmed.
source "${top_srcdir:-$(dirname "$0")/..}/tests/functions.sh"
source "$top_srcdir/tests/control-lib.sh"

start_ctl size=64M

# Blocks 0-99 random (stored huge), 100-149 all 'A' and 150-199 zero
# (same-filled), 200-299 compressible text.  Then trim 150-199 and zero
# 120-129 (written before: same pages either way, but freed).
timeout 60 nbdsh -u "$uri" -c '
import os
B = 4096
h.pwrite(os.urandom(100 * B), 0)
h.pwrite(b"A" * (50 * B), 100 * B)
h.pwrite(bytes(50 * B), 150 * B)
text = b"".join(b"line %08d of some compressible text\n" % i for i in range(12000))
h.pwrite(text[:100 * B], 200 * B)
' || fail "the write pattern"

# mm_stat: orig_data_size compr_data_size mem_used_total mem_limit
#          mem_used_max same_pages pages_compacted huge_pages huge_pages_since
mm () { field "$ctl/mm_stat" "$1"; }
[ "$(mm 1)" = $((300 * 4096)) ] || fail "orig_data_size $(mm 1), expected $((300 * 4096))"
[ "$(mm 6)" = 100 ] || fail "same_pages $(mm 6), expected 100"
[ "$(mm 8)" = 100 ] || fail "huge_pages $(mm 8), expected 100"
[ "$(mm 9)" = 100 ] || fail "huge_pages_since $(mm 9), expected 100"
compr=$(mm 2)
[ "$compr" -ge $((100 * 4096)) ] && [ "$compr" -lt $((150 * 4096)) ] ||
    fail "compr_data_size $compr: not 100 huge pages and some text"
[ "$(mm 3)" -ge "$compr" ] || fail "mem_used_total $(mm 3) below compr_data_size $compr"
[ "$(mm 5)" -ge "$(mm 3)" ] || fail "mem_used_max $(mm 5) below mem_used_total $(mm 3)"
# stat: 4 write requests of 800 + 400 + 400 + 800 sectors.
[ "$(field "$ctl/stat" 5)" = 4 ] || fail "stat write_ios: $(cat "$ctl/stat")"
[ "$(field "$ctl/stat" 7)" = $((300 * 8)) ] || fail "stat write_sectors: $(cat "$ctl/stat")"

timeout 60 nbdsh -u "$uri" -c '
B = 4096
h.trim(50 * B, 150 * B)
h.zero(10 * B, 120 * B)
h.pwrite(bytes(B), 0)           # a huge page becomes a same page
assert h.pread(B, 125 * B) == bytes(B)
assert h.pread(B, 100 * B) == b"A" * B
' || fail "trims and zeroes"
[ "$(mm 1)" = $((240 * 4096)) ] || fail "orig_data_size after trims $(mm 1), expected $((240 * 4096))"
[ "$(mm 6)" = 41 ] || fail "same_pages after trims $(mm 6), expected 41"
[ "$(mm 8)" = 99 ] || fail "huge_pages after overwrite $(mm 8), expected 99"
[ "$(mm 9)" = 100 ] || fail "huge_pages_since $(mm 9), expected 100"
[ "$(field "$ctl/io_stat" 4)" = 60 ] || fail "notify_free $(cat "$ctl/io_stat"), expected 60"
[ "$(field "$ctl/stat" 12)" = 2 ] || fail "stat discard_ios: $(cat "$ctl/stat")"
[ "$(field "$ctl/stat" 14)" = $((60 * 8)) ] || fail "stat discard_sectors: $(cat "$ctl/stat")"

# mem_used_max "0": back to the current use.
expect_ok "$ctl/mem_used_max" 0
[ "$(mm 5)" = "$(mm 3)" ] || fail "mem_used_max $(mm 5) after reset, mem_used_total $(mm 3)"

# --- compact: fill with objects of many sizes, trim every other block ---
timeout 120 nbdsh -u "$uri" -c '
import os, random
B = 4096
random.seed(7)
start = 1024                     # 4 MiB in, clear of the pattern above
n = 8192                         # 32 MiB of blocks
buf = bytearray()
for i in range(n):
    k = random.randrange(200, 3000)         # compresses to about k bytes
    buf += os.urandom(k) + bytes(B - k)
    if len(buf) >= 1024 * B:
        h.pwrite(bytes(buf), (start + i + 1) * B - len(buf))
        buf = bytearray()
if buf:
    h.pwrite(bytes(buf), (start + n) * B - len(buf))
for i in range(0, n, 2):
    h.trim(B, (start + i) * B)
' || fail "filling and trimming for compact"
before=$(mm 3)
compacted=$(mm 7)
expect_ok "$ctl/compact" 1
after=$(mm 3)
echo "compact: mem_used_total $before -> $after, pages_compacted $compacted -> $(mm 7)"
[ "$after" -lt "$before" ] || fail "compact did not lower mem_used_total ($before -> $after)"
[ $((after * 10)) -lt $((before * 8)) ] ||
    fail "compact freed under 20 % after trimming half ($before -> $after)"
[ "$(mm 7)" -gt "$compacted" ] || fail "pages_compacted did not grow"
# The data left is intact.
timeout 120 nbdsh -u "$uri" -c '
import os, random
B = 4096
random.seed(7)
start, n = 1024, 8192
for i in range(n):
    k = random.randrange(200, 3000)
    got = h.pread(B, (start + i) * B)
    if i % 2:
        assert got[k:] == bytes(B - k) and got[:k] != bytes(k), i
    else:
        assert got == bytes(B), i
assert h.pread(B, 100 * B) == b"A" * B
' || fail "data after compact"
echo "PASS: $0"
