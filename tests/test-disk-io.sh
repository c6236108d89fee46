#!/bin/bash
# `disk`, the device as a file: the same engine as NBD.  Writes through one
# are read through the other at once, on the same blocks, interleaved;
# fallocate punch-hole and zero-range free blocks (notify_free), and so does
# discard on a loop device over `disk`; the file's size follows disksize;
# an open `disk` or an attached loop device makes reset EBUSY.
source "${top_srcdir:-$(dirname "$0")/..}/tests/functions.sh"
source "$top_srcdir/tests/control-lib.sh"
need_tool blkdiscard fallocate

start_ctl size=32M
[ "$(stat -c %s "$ctl/disk")" = $((32 << 20)) ] || fail "disk size $(stat -c %s "$ctl/disk")"

# --- NBD and file I/O interleaved on the same blocks ---
interleave_nbd_disk 3 3000

# The threads that served `disk` run as I/O flushers (PR_SET_IO_FLUSHER
# sets PF_MEMALLOC_NOIO, 0x80000, in the task's flags), where the kernel
# lets us (it needs CAP_SYS_RESOURCE; without it nbdkit says so with -v).
if python3 -c 'import ctypes, sys
sys.exit(ctypes.CDLL(None).prctl(57, 1, 0, 0, 0) != 0)'; then
    flushers=0
    for t in /proc/$nbdkit_pid/task/*/stat; do
        flags=$(sed 's/.*) //' "$t" 2>/dev/null | cut -d' ' -f7)
        [ -n "$flags" ] && (( flags & 0x80000 )) && flushers=$((flushers + 1))
    done
    [ $flushers -gt 0 ] || fail "no nbdkit thread has PR_SET_IO_FLUSHER"
else
    echo "PR_SET_IO_FLUSHER not permitted here (no CAP_SYS_RESOURCE): not checked"
fi

# --- reads and writes at the end of the device ---
size=$((32 << 20))
timeout 30 python3 - "$ctl/disk" $size <<'EOF' || fail "end of device"
import errno, os, sys
path, size = sys.argv[1], int(sys.argv[2])
fd = os.open(path, os.O_RDWR)
assert os.pread(fd, 8192, size - 4096) == bytes(4096)   # short read
assert os.pread(fd, 4096, size) == b""                   # end of file
assert os.pwrite(fd, b"e" * 8192, size - 4096) == 4096   # short write
try:
    os.pwrite(fd, b"e" * 4096, size)
    raise AssertionError("a write past the end succeeded")
except OSError as e:
    assert e.errno == errno.ENOSPC, e
os.close(fd)
EOF

# --- fallocate on the file: punch hole and zero range ---
nf () { field "$ctl/io_stat" 4; }
timeout 20 dd if=/dev/urandom of="$ctl/disk" bs=1M count=4 seek=8 conv=notrunc status=none
before=$(nf)
timeout 20 fallocate -p -o $((8 << 20)) -l $((1 << 20)) "$ctl/disk" || fail "fallocate -p"
[ $(( $(nf) - before )) = 256 ] || fail "punch hole: notify_free $before -> $(nf)"
timeout 20 fallocate -z -o $((9 << 20)) -l $((1 << 20)) "$ctl/disk" || fail "fallocate -z"
[ $(( $(nf) - before )) = 512 ] || fail "zero range: notify_free $before -> $(nf)"
timeout 20 nbdsh -u "$uri" -c "
assert h.pread(2 << 20, 8 << 20) == bytes(2 << 20)
assert h.pread(4096, 10 << 20) != bytes(4096)
" || fail "data after punch hole and zero range"
[ "$(stat -c %s "$ctl/disk")" = $size ] || fail "fallocate changed the size"

# --- discard on a loop device over `disk` reaches the engine ---
attach_loop "$ctl/disk"
[ "$(cat /sys/block/${loop#/dev/}/queue/discard_max_bytes)" -gt 0 ] ||
    fail "$loop has no discard"
timeout 30 dd if=/dev/urandom of="$loop" bs=1M count=8 seek=16 oflag=direct status=none
orig=$(field "$ctl/mm_stat" 1)
before=$(nf)
timeout 30 blkdiscard -o $((16 << 20)) -l $((8 << 20)) "$loop" || fail "blkdiscard"
[ $(( $(nf) - before )) = 2048 ] || fail "blkdiscard: notify_free $before -> $(nf)"
[ $(( orig - $(field "$ctl/mm_stat" 1) )) = $((8 << 20)) ] ||
    fail "blkdiscard: orig_data_size $orig -> $(field "$ctl/mm_stat" 1)"
# Write-zeroes (BLKZEROOUT) too.
timeout 30 dd if=/dev/urandom of="$loop" bs=1M count=1 seek=16 oflag=direct status=none
timeout 30 blkdiscard -z -o $((16 << 20)) -l $((1 << 20)) "$loop" || fail "blkdiscard -z"
cmp -n $((1 << 20)) <(timeout 30 dd if="$loop" bs=1M skip=16 count=1 iflag=direct status=none) /dev/zero ||
    fail "blkdiscard -z did not zero"

# --- reset is EBUSY while the loop device holds `disk` ---
expect_err "Device or resource busy" "$ctl/reset" 1
detach_loop "$loop" "$ctl/disk"
expect_ok "$ctl/reset" 1
[ "$(stat -c %s "$ctl/disk")" = 0 ] || fail "disk size after reset"
echo 8M > "$ctl/disksize"
[ "$(stat -c %s "$ctl/disk")" = $((8 << 20)) ] || fail "disk size after disksize"
echo "PASS: $0"
