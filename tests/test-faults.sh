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
# itself to 60 s).  The kill comes once the server's `stat` shows writes
# in flight (in_flight, field 9) and some already done: the client was
# writing when it died, not still connecting or already finished.
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
cleanup_fn "kill -KILL $victim 2>/dev/null"
w0=$(awk '{ print $5 }' "$tmpdir/ctl/stat")
in_flight=0
for i in $(seq 300); do
    set -- $(cat "$tmpdir/ctl/stat")
    if [ "$9" -gt 0 ] && [ "$5" -gt "$w0" ]; then
        kill -KILL $victim
        in_flight=$9
        break
    fi
    kill -0 $victim 2>/dev/null || fail "the writing client ended before it was killed"
    sleep 0.1
done
wait $victim 2>/dev/null || :
[ "$in_flight" -gt 0 ] || fail "no write was ever seen in flight in 30 s"
echo "killed the client with $in_flight requests in flight ($(( $5 - w0 )) writes done)"
sum1=$(timeout 60 nbdsh -u "$uri" -c 'import hashlib; print(hashlib.sha256(h.pread(16 << 20, 0)).hexdigest())')
[ "$sum0" = "$sum1" ] || fail "data changed after a client was killed mid-request"

# Past the end: libnbd refuses such requests itself unless strict mode is
# off; so off, they reach nbdkit, which answers as the NBD protocol says
# (EINVAL for a read, ENOSPC for a write: libnbd's own refusal would be
# EINVAL for both) before the plugin sees them, so
# invalid_io does not count them.  Nothing changes.
inv0=$(awk '{ print $3 }' "$tmpdir/ctl/io_stat")
timeout 60 nbdsh -u "$uri" -c '
import errno, nbd
h.set_strict_mode(0)
for what, f, want in (
        ("read", lambda: h.pread(4096, (256 << 20) - 100), errno.EINVAL),
        ("write", lambda: h.pwrite(b"x" * 8192, 256 << 20), errno.ENOSPC)):
    try:
        f()
        raise SystemExit("a %s past the end succeeded" % what)
    except nbd.Error as e:
        assert e.errnum == want, "%s past the end: %s, want %s" % (what, e, errno.errorcode[want])
        print("%s past the end:" % what, e)
' || fail "requests past the end were not refused by the server"
inv1=$(awk '{ print $3 }' "$tmpdir/ctl/io_stat")
[ "$inv1" = "$inv0" ] || fail "invalid_io went from $inv0 to $inv1: a request past the end reached the plugin"
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
