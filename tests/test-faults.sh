#!/bin/bash
# Faults seen from outside: a client killed in the middle of its requests,
# requests past the end, nbdkit stopped with SIGTERM (the control
# filesystem goes with it) and killed with SIGKILL (the next start on the
# same directory recovers the mountpoint).
source "$top_srcdir/tests/functions.sh"
need_tool nbdsh
mkdir "$tmpdir/ctl"
cleanup_fn "mountpoint -q $tmpdir/ctl && umount -l $tmpdir/ctl"
start_zram size=256M control="$tmpdir/ctl"

# Known data in the first 16 MiB.
timeout 60 nbdsh -u "$uri" -c '
import random
rng = random.Random(1)
h.pwrite(bytes(rng.getrandbits(8) for _ in range(1 << 20)) * 16, 0)
'
sum0=$(timeout 60 nbdsh -u "$uri" -c 'import hashlib; print(hashlib.sha256(h.pread(16 << 20, 0)).hexdigest())')

# A client writing big requests elsewhere, killed mid-stream (nbdsh
# itself, not through timeout, so that the kill reaches it; it bounds
# itself to 60 s).
nbdsh -u "$uri" -c '
import os, time
buf = os.urandom(8 << 20)
end = time.time() + 60
while time.time() < end:
    for off in range(32 << 20, 256 << 20, 8 << 20):
        h.aio_pwrite(buf, off)
    while h.aio_in_flight() > 0:
        h.poll(-1)
' &
victim=$!
sleep 2
kill -KILL $victim; wait $victim 2>/dev/null || :
sum1=$(timeout 60 nbdsh -u "$uri" -c 'import hashlib; print(hashlib.sha256(h.pread(16 << 20, 0)).hexdigest())')
[ "$sum0" = "$sum1" ] || fail "data changed after a client was killed mid-request"

# Past the end: an error, counted, nothing changed.
inv0=$(awk '{ print $3 }' "$tmpdir/ctl/io_stat")
timeout 60 nbdsh -u "$uri" -c '
import nbd
for f in (lambda: h.pread(4096, (256 << 20) - 100), lambda: h.pwrite(b"x" * 8192, 256 << 20)):
    try:
        f()
        raise SystemExit("a request past the end succeeded")
    except nbd.Error as e:
        print("past the end:", e)
' || fail "requests past the end were not refused"
sum2=$(timeout 60 nbdsh -u "$uri" -c 'import hashlib; print(hashlib.sha256(h.pread(16 << 20, 0)).hexdigest())')
[ "$sum0" = "$sum2" ] || fail "data changed after requests past the end"

# The killed client's connection is gone: reset is allowed again.
for i in $(seq 50); do echo 1 2>/dev/null > "$tmpdir/ctl/reset" && break; sleep 0.1; done
[ "$(cat "$tmpdir/ctl/initstate")" = 0 ] || fail "reset refused after every client left"

# SIGTERM: nbdkit exits, and the control filesystem is unmounted.
stop_nbdkit $nbdkit_pid
mountpoint -q "$tmpdir/ctl" && fail "control filesystem still mounted after SIGTERM"

# SIGKILL leaves it stale; the next start recovers it.
start_zram size=64M control="$tmpdir/ctl"
kill -KILL $nbdkit_pid; wait $nbdkit_pid 2>/dev/null || :
stat "$tmpdir/ctl/disksize" >/dev/null 2>&1 && fail "control files still answer after SIGKILL"
start_zram size=64M control="$tmpdir/ctl"
[ "$(cat "$tmpdir/ctl/disksize")" = 67108864 ] || fail "stale mountpoint not recovered"
echo OK
