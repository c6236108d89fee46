#!/bin/bash
# mem_limit set through the control file: a write past it fails with ENOSPC
# (over NBD and through `disk`), io_stat's failed_writes counts it, the
# block keeps its old contents and nothing written earlier is lost.
# Raising the limit lets writes through again.
source "${top_srcdir:-$(dirname "$0")/..}/tests/functions.sh"
source "$top_srcdir/tests/control-lib.sh"

start_ctl size=64M
export tmpdir
expect_ok "$ctl/mem_limit" $'2M\n'
[ "$(field "$ctl/mm_stat" 4)" = 2097152 ] || fail "mem_limit: $(cat "$ctl/mm_stat")"

# Random blocks are stored whole (huge pages): 2 MiB holds under 512.
timeout 120 nbdsh -u "$uri" -c "$fill_to_limit_py"'
import os, random
B = 4096
random.seed(1)
failed_at, old = fill_to_limit(1024, 256, 512, lambda i: random.randbytes(B))
# The failed block kept its contents (never written: zeroes) ...
assert h.pread(B, failed_at * B) == bytes(B)
# ... and so did an overwrite that failed.
try:
    h.pwrite(random.randbytes(B), 3 * B)
    raise AssertionError("an overwrite over mem_limit succeeded")
except nbd.Error as e:
    assert e.errnum == errno.ENOSPC, e
for i, data in old.items():
    assert h.pread(B, i * B) == data, i
# Same-filled blocks need no memory: they still go in.
h.pwrite(b"\x55" * B, 2000 * B)
assert h.pread(B, 2000 * B) == b"\x55" * B
open(os.environ["tmpdir"] + "/failed_at", "w").write(str(failed_at))
' || fail "writes over mem_limit over NBD"
failed=$(field "$ctl/io_stat" 2)
[ "$failed" = 2 ] || fail "io_stat failed_writes $failed, expected 2: $(cat "$ctl/io_stat")"

# The same through `disk`: ENOSPC for the writer, one more failed write.
failed_at=$(cat "$tmpdir/failed_at")
err=$(timeout 30 dd if=/dev/urandom of="$ctl/disk" bs=4096 count=1 \
        seek=$((failed_at + 1)) conv=notrunc 2>&1) &&
    fail "a write through disk over mem_limit succeeded"
[[ $err == *"No space left on device"* ]] || fail "disk over mem_limit: $err"
[ "$(field "$ctl/io_stat" 2)" = 3 ] || fail "io_stat after disk: $(cat "$ctl/io_stat")"

# Raising the limit (0: none) lets the same write through.
expect_ok "$ctl/mem_limit" 0
timeout 30 dd if=/dev/urandom of="$ctl/disk" bs=4096 count=1 \
    seek=$((failed_at + 1)) conv=notrunc status=none ||
    fail "a write after lifting mem_limit"
echo "PASS: $0"
