#!/bin/bash
# Writeback through the control files of a running plugin, with NBD
# clients reading and writing: backing_dev on a sparse file in a small
# tmpfs that fills up part way, so that writeback meets real ENOSPC from
# the filesystem (the blocks that failed stay in memory, bd_stat counts
# only what went out, writeback reports EIO); every block reads back
# intact over NBD, from memory and from the backing file alike; block_state
# has the kernel's format; overwrite and trim give backing blocks back;
# reset lets go of the file.  A block device is claimed exclusively
# (EBUSY while another holds it).  Then the policy's recompress_idle.  Needs
# root for the tmpfs mount (run it under /tmp/uzram-test.lock, as every
# test that mounts).
source "${top_srcdir:-$(dirname "$0")/..}/tests/functions.sh"
source "$top_srcdir/tests/control-lib.sh"

[ "$(id -u)" = 0 ] || skip_test "needs root to mount a tmpfs"
small=$tmpdir/small
mkdir "$small"
mount -t tmpfs -o size=256k,mode=700 uzram-wb-test "$small" ||
    fail "mount tmpfs"
cleanup_fn "umount -l $small"
# Sparse 4 MiB on 256 KiB: the filesystem runs out after about 64 blocks.
truncate -s 4M "$small/backing" || fail "truncate"

start_ctl
expect_bytes "$ctl/backing_dev" $'none\n'
expect_err "Invalid argument" "$ctl/writeback" idle          # uninitialised
expect_err "Block device required" "$ctl/backing_dev" /dev/null

# A block device is held exclusively, as zram holds its backing device
# (O_EXCL, the claim a mount or another zram makes): EBUSY while someone
# else holds it, and while uzram holds it nobody else can claim it, until
# backing_dev changes.
truncate -s 1M "$tmpdir/bdev" || fail "truncate"
bdev=$(timeout 20 losetup -f --show "$tmpdir/bdev") || fail "losetup"
cleanup_fn "detach_loop $bdev $tmpdir/bdev"
# claim DEV: claims DEV as a mount would, and says whether it could.
claim ()
{
    python3 -c '
import errno, os, sys
try:
    os.close(os.open(sys.argv[1], os.O_RDONLY | os.O_EXCL))
    print("ok")
except OSError as e:
    print(errno.errorcode[e.errno])' "$1"
}
python3 -c '
import os, sys, time
fd = os.open(sys.argv[1], os.O_RDONLY | os.O_EXCL)
print("held", flush=True)
time.sleep(60)' "$bdev" > "$tmpdir/held" &
holder=$!
cleanup_fn "stop_pid $holder"
for (( i = 0; i < 100; i++ )); do
    [ -s "$tmpdir/held" ] && break
    sleep 0.1
done
[ "$(cat "$tmpdir/held")" = held ] || fail "the holder did not claim $bdev"
expect_err "Device or resource busy" "$ctl/backing_dev" "$bdev"
expect_bytes "$ctl/backing_dev" $'none\n'
stop_pid $holder
[ "$(claim "$bdev")" = ok ] || fail "$bdev still claimed after its holder"
expect_ok "$ctl/backing_dev" "$bdev"
expect_bytes "$ctl/backing_dev" "$bdev"$'\n'
[ "$(claim "$bdev")" = EBUSY ] || fail "uzram's backing $bdev: claim gave $(claim "$bdev")"

expect_ok "$ctl/backing_dev" "$small/backing"$'\n'
expect_bytes "$ctl/backing_dev" "$small/backing"$'\n'
[ "$(claim "$bdev")" = ok ] || fail "$bdev still claimed after backing_dev changed"
expect_ok "$ctl/disksize" 8M
expect_err "Device or resource busy" "$ctl/backing_dev" "$small/backing"

# 150 random (huge) blocks, 50 compressible, 20 same-filled.
timeout 120 nbdsh -u "$uri" -c '
import random
random.seed(19)
B = 4096
for i in range(150):
    h.pwrite(random.randbytes(B), i * B)
for i in range(150, 200):
    h.pwrite((b"uzram %d " % i) * (B // 16) + bytes(B - (B // 16) * len(b"uzram %d " % i)), i * B)
for i in range(200, 220):
    h.pwrite(bytes([i]) * B, i * B)
' || fail "writing the blocks"
mem_before=$(field "$ctl/mm_stat" 3)
[ "$(field "$ctl/mm_stat" 8)" = 150 ] || fail "huge_pages: $(cat "$ctl/mm_stat")"

# The tmpfs fills: EIO, and what did go out is counted.
expect_err "Input/output error" "$ctl/writeback" huge
count=$(field "$ctl/bd_stat" 1)
writes=$(field "$ctl/bd_stat" 3)
[ "$count" = "$writes" ] || fail "bd_stat: $(cat "$ctl/bd_stat")"
[ "$count" -gt 10 ] && [ "$count" -lt 150 ] ||
    fail "bd_count $count: the tmpfs should have taken some, not all"
[ "$(field "$ctl/mm_stat" 8)" = $((150 - count)) ] ||
    fail "huge_pages after writeback: $(cat "$ctl/mm_stat")"
[ "$(field "$ctl/mm_stat" 3)" -lt "$mem_before" ] ||
    fail "mem_used_total did not fall: $mem_before -> $(cat "$ctl/mm_stat")"
# block_state: the kernel's columns, w on what went out, h on the rest.
grep -Eqv '^ {0,11}[0-9]+ +[0-9]+\.[0-9]{6} [s.][w.][h.][i.][r.][n.]$' \
    "$ctl/block_state" && fail "block_state: $(head -3 "$ctl/block_state")"
[ "$(wc -l < "$ctl/block_state")" = 220 ] || fail "block_state lines"
[ "$(grep -c ' \.w\.\.\.\.$' "$ctl/block_state")" = "$count" ] ||
    fail "block_state's w flags"
[ "$(grep -c ' s\.\.\.\.\.$' "$ctl/block_state")" = 20 ] ||
    fail "block_state's s flags"

# Everything reads back over NBD; then overwrite and trim written-back
# blocks, and read again.
check_py='
import random
random.seed(19)
B = 4096
for i in range(150):
    d = random.randbytes(B)
    if i % 10 != 5:
        assert h.pread(B, i * B) == d, i
for i in range(150, 200):
    x = (b"uzram %d " % i) * (B // 16)
    assert h.pread(B, i * B) == x + bytes(B - len(x)), i
for i in range(200, 220):
    assert h.pread(B, i * B) == bytes([i]) * B, i
'
timeout 120 nbdsh -u "$uri" -c "$check_py" || fail "read-back"
reads=$(field "$ctl/bd_stat" 2)
[ "$reads" -gt 0 ] || fail "nothing read from the backing file"
timeout 120 nbdsh -u "$uri" -c '
B = 4096
for i in range(0, 150, 10):
    h.trim(B, (i + 5) * B)
' || fail "trim"
[ "$(field "$ctl/bd_stat" 1)" -lt "$count" ] ||
    fail "trim gave no backing block back: $(cat "$ctl/bd_stat")"
timeout 120 nbdsh -u "$uri" -c "$check_py"'
for i in range(0, 150, 10):
    assert h.pread(B, (i + 5) * B) == bytes(B), i
' || fail "read-back after trim"

# idle, then writeback idle: the compressible blocks go out while the
# filesystem has room; page_index past the end is ERANGE.
expect_ok "$ctl/idle" all
expect_err "Numerical result out of range" "$ctl/writeback" page_index=2048
attr_write "$ctl/writeback" type=idle >/dev/null
timeout 120 nbdsh -u "$uri" -c "$check_py" || fail "read-back after idle"

expect_ok "$ctl/reset" 1
expect_bytes "$ctl/backing_dev" $'none\n'
expect_bytes "$ctl/bd_stat" "       0        0        0"$'\n'

# The policy's recompress_idle through writeback_policy: off by default,
# bad input is EINVAL and changes nothing, and set at run time it
# recompresses the blocks left idle (random bytes of 16 values: huge
# under lzo-rle, about half under zstd) once, shown in policy_stat, with
# no backing device, and the data reads back intact.
expect_bytes "$ctl/writeback_policy" \
    $'writeback_idle=0 near_limit=0 recompress_idle=0\n'
expect_err "Invalid argument" "$ctl/writeback_policy" recompress_idle=soon
expect_err "Invalid argument" "$ctl/writeback_policy" "recompress_idle=1 x=1"
expect_bytes "$ctl/writeback_policy" \
    $'writeback_idle=0 near_limit=0 recompress_idle=0\n'
has_algorithm zstd || { echo "zstd not built: recompress_idle not tested"; exit 0; }
expect_ok "$ctl/recomp_algorithm" algo=zstd
expect_ok "$ctl/disksize" 8M
nibble_py='
import random
random.seed(20)
B = 4096
pages = [bytes(random.choice(b"abcdefghijklmnop") for _ in range(B))
         for i in range(40)]
'
timeout 120 nbdsh -u "$uri" -c "$nibble_py"'
for i in range(40):
    h.pwrite(pages[i], i * B)
' || fail "writing the nibble blocks"
[ "$(field "$ctl/mm_stat" 8)" = 40 ] || fail "huge_pages: $(cat "$ctl/mm_stat")"
compr_before=$(field "$ctl/mm_stat" 2)
expect_ok "$ctl/writeback_policy" recompress_idle=1
for (( i = 0; i < 100; i++ )); do
    [ "$(field "$ctl/policy_stat" 3)" = 40 ] && break
    sleep 0.1
done
expect_bytes "$ctl/policy_stat" "       0        0       40"$'\n'
[ "$(field "$ctl/mm_stat" 8)" = 0 ] || fail "huge_pages: $(cat "$ctl/mm_stat")"
[ "$(field "$ctl/mm_stat" 2)" -lt $((compr_before * 2 / 3)) ] ||
    fail "compr_data_size $compr_before -> $(cat "$ctl/mm_stat")"
[ "$(grep -c ' \.\.\.\.r\.$' "$ctl/block_state")" = 40 ] ||
    fail "block_state's r flags: $(head -3 "$ctl/block_state")"
expect_ok "$ctl/writeback_policy" recompress_idle=0
timeout 120 nbdsh -u "$uri" -c "$nibble_py"'
for i in range(40):
    assert h.pread(B, i * B) == pages[i], i
' || fail "read-back after recompress_idle"
expect_ok "$ctl/reset" 1
exit 0
