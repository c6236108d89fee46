#!/usr/bin/env bash
# mem_limit: a write that would take the allocator past the limit fails
# with ENOSPC (to the NBD client), failed_writes counts it, the block keeps
# its old contents and every earlier block reads back intact.  Same pages
# need no memory and still succeed; freeing makes room again.
source "$top_srcdir/tests/functions.sh"
source "$top_srcdir/tests/plugin-functions.sh"
need_tool nbdkit nbdsh

start_zram_logged size=64M mem_limit=1M
nbdsh_py "$fill_to_limit_py"'
import os, struct
B = 4096
word = struct.pack("<Q", 0x5a5a5a5a12345678) * 512
# Blocks 0-511 hold a repeated word first: no memory.
h.pwrite(word * 512, 0)
# 2M of random data does not fit in 1M.
failed, written = fill_to_limit(512, 200, 256, lambda i: os.urandom(B))
# The failed block keeps its word; the others their data.
assert h.pread(B, failed * B) == word
for i, data in written.items():
    assert h.pread(B, i * B) == data, i
# A partial write that needs a new object fails the same way.
try:
    h.pwrite(os.urandom(100), (failed + 1) * B + 7)
    assert False, "partial write over the limit succeeded"
except nbd.Error as e:
    assert e.errnum == errno.ENOSPC, e
assert h.pread(B, (failed + 1) * B) == word
# Same pages still work.
h.pwrite(bytes(B), failed * B)
assert h.pread(B, failed * B) == bytes(B)
# Trim half: room again.
h.trim(128 * B, 0)
h.pwrite(written[200], failed * B)
assert h.pread(B, failed * B) == written[200]
print("ENOSPC at block", failed)
'
wait_close
expect_stat failed_writes 2
used=$(stat_of mem_used_total)
max=$(stat_of mem_used_max)
[ "$used" -le $((1024 * 1024)) ] || fail "mem_used_total $used over the limit"
[ "$max" -ge "$used" ] && [ "$max" -le $((1024 * 1024 + 16 * 4096)) ] ||
    fail "mem_used_max $max (it counts a refused allocation, as zram does)"
set -- $(last_mm_stat)
[ "$4" = 1048576 ] || fail "mm_stat mem_limit field is $4"
echo "mm_stat: $(last_mm_stat)"
