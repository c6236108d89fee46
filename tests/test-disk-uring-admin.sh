#!/bin/bash
# Admin work with `disk` served over FUSE io_uring (enable_uring=Y for the
# test, put back after): a control file's store runs off the ring threads.
# - A reset refused (EBUSY) after its grace for a closing client takes a
#   while; reads of `disk` from the same CPU (so through the same ring)
#   must go on meanwhile, not wait behind it.
# - reset right after `losetup -d`, the writer on either CPU: succeeds.
# - compact, repeatedly, while fio verifies through a loop device.
# Skipped where the kernel has no FUSE over io_uring.
source "${top_srcdir:-$(dirname "$0")/..}/tests/functions.sh"
source "$top_srcdir/tests/control-lib.sh"
need_tool fio taskset

enable_fuse_uring

log=$tmpdir/nbdkit.log
start_ctl -- size=128M uring=on 2>"$log"
cleanup_fn '[ "$rc" -ne 0 ] && { echo "--- nbdkit log:"; tail -20 "'"$log"'"; }'
wait_ring_threads "$nbdkit_pid" 1

# --- Reads from the CPU of a slow store go on while it runs ---
# One process on CPU 0 holds `disk` open and reads it in a thread while
# its main thread writes reset, which waits its grace for the holder
# (itself) and then says EBUSY.  Both requests come from CPU 0, so both go
# to queue 0's ring.
timeout 60 dd if=/dev/urandom of="$ctl/disk" bs=1M count=4 conv=notrunc status=none ||
    fail "writing $ctl/disk"
out=$(timeout 60 taskset -c 0 python3 -c '
import os, sys, threading, time
ctl = sys.argv[1]
fd = os.open(ctl + "/disk", os.O_RDONLY)
times = []
stop = False
def reader():
    while not stop:
        os.pread(fd, 4096, 4096 * (len(times) % 1024))
        times.append(time.monotonic())
t = threading.Thread(target=reader)
t.start()
time.sleep(0.3)
t0 = time.monotonic()
try:
    w = os.open(ctl + "/reset", os.O_WRONLY)
    os.write(w, b"1")
    os.close(w)
    r = "OK"
except OSError as e:
    r = e.strerror
t1 = time.monotonic()
time.sleep(0.1)
stop = True
t.join()
os.close(fd)
inside = [x for x in times if t0 <= x <= t1]
gaps = [b - a for a, b in zip(times, times[1:]) if b >= t0 and a <= t1]
print("%s %.0f %d %.0f" % (r.replace(" ", "_"), (t1 - t0) * 1000, len(inside),
                           max(gaps) * 1000 if gaps else -1))
' "$ctl") || fail "the reader/reset process failed"
set -- $out
echo "reset with disk open: $1 after $2 ms; $3 reads of disk meanwhile, longest gap $4 ms"
[ "$1" = Device_or_resource_busy ] || fail "reset with disk open: $1, expected EBUSY"
[ "$2" -ge 100 ] || fail "reset said EBUSY after $2 ms: it gave the closing client no grace"
[ "$3" -ge 10 ] ||
    fail "only $3 reads of disk completed during the $2 ms of a reset from the same CPU: I/O waited behind the store"
[ "$4" -lt "$2" ] || fail "reads of disk stopped for $4 ms, the whole of the reset's $2 ms"

# --- reset right after losetup -d, from either CPU ---
worst=0
for i in 1 2 3 4 5 6; do
    cpu=$((i % 2))
    [ "$(cat "$ctl/initstate")" = 1 ] || expect_ok "$ctl/disksize" 64M
    attach_loop "$ctl/disk"
    timeout 60 dd if=/dev/urandom of="$loop" bs=64k count=16 oflag=direct status=none ||
        fail "writing $loop"
    timeout 20 taskset -c $cpu losetup -d "$loop" || fail "losetup -d $loop"
    out=$(timeout 20 taskset -c $cpu python3 -c '
import os, sys, time
t = time.monotonic()
try:
    fd = os.open(sys.argv[1], os.O_WRONLY); os.write(fd, b"1"); os.close(fd); r = "OK"
except OSError as e:
    r = e.strerror.replace(" ", "_")
print("%s %.0f" % (r, (time.monotonic() - t) * 1000))
' "$ctl/reset") || fail "writing reset timed out"
    set -- $out
    [ "$1" = OK ] || fail "reset right after losetup -d (CPU $cpu): $1 after $2 ms"
    [ "$2" -gt "$worst" ] && worst=$2
done
echo "reset right after losetup -d: OK 6 times, the slowest $worst ms"

# --- compact under load ---
[ "$(cat "$ctl/initstate")" = 1 ] || expect_ok "$ctl/disksize" 128M
attach_loop "$ctl/disk"
fio_log=$tmpdir/fio.log
timeout 300 fio --name=load --filename="$loop" --direct=1 --ioengine=libaio \
    --iodepth=16 --rw=randwrite --bs=4k --size=64M --verify=crc32c \
    --verify_fatal=1 --do_verify=1 --buffer_compress_percentage=60 \
    --refill_buffers --verify_state_save=0 >"$fio_log" 2>&1 &
fio_pid=$!
cleanup_fn "kill $fio_pid 2>/dev/null; wait $fio_pid 2>/dev/null"
n=0
while pid_alive "$fio_pid"; do
    cpu=$((n % 2))
    r=$(timeout 20 taskset -c $cpu python3 -c '
import os, sys
try:
    fd = os.open(sys.argv[1], os.O_WRONLY); os.write(fd, b"1"); os.close(fd); print("OK")
except OSError as e:
    print(e.strerror)
' "$ctl/compact") || fail "compact timed out under load"
    [ "$r" = OK ] || fail "compact under load: $r"
    n=$((n + 1))
    sleep 0.05
done
wait "$fio_pid" || fail "fio under compaction failed: $(tail -5 "$fio_log")"
[ "$n" -ge 3 ] || fail "only $n compactions ran during the load"
grep -q "err= 0" "$fio_log" || fail "fio: $(grep -i err "$fio_log" | head -3)"
echo "compact: $n writes during fio's 64 MiB of random writes and their verification"
detach_loop "$loop" "$ctl/disk"
! grep -qE '(^|: )error: ' "$log" || fail "nbdkit logged errors: $(grep -E '(^|: )error: ' "$log" | head -3)"
echo "PASS: $0"
