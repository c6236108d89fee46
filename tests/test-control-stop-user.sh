#!/bin/bash
# nbdkit run by a user other than root stops while another process of
# that user holds `disk` open.  Such a server may not umount2 its mount:
# fusermount3 detaches it lazily, the connection stays up for the holder,
# and the FUSE workers asleep in read(2) would never see the exit, so
# control_stop (and nbdkit with it) would wait until the holder closes
# `disk`.  It must exit within 20 s of SIGTERM; the holder's I/O then
# fails instead of hanging.  uring=off (URING=on to try the rings: there
# the holder's read still hangs once nbdkit has gone, see the report of
# issue 15's control work).
# Run under the test lock: it changes /dev/fuse's mode for its duration.
source "${top_srcdir:-$(dirname "$0")/..}/tests/functions.sh"
source "$top_srcdir/tests/control-lib.sh"
need_tool setpriv fusermount3

[ "$(id -u)" = 0 ] || skip_test "needs root to run nbdkit as another user"
id nobody >/dev/null 2>&1 || fail "no user nobody"
[ -u "$(command -v fusermount3)" ] ||
    skip_test "fusermount3 is not setuid root here: no user mounts"
as_nobody () { setpriv --reuid=nobody --regid=nogroup --clear-groups "$@"; }
# Distributions make /dev/fuse 0666 (users mount through it, with
# fusermount3); where it is not, open it up for the test and put its mode
# back after.
mode=$(stat -c %a /dev/fuse)
if [ "$mode" != 666 ]; then
    cleanup_fn "chmod $mode /dev/fuse"
    chmod 666 /dev/fuse
fi

chmod 755 "$tmpdir"
d=$tmpdir/user
mkdir -m 0755 "$d"; mkdir "$d/ctl"
chown nobody:nogroup "$d" "$d/ctl"
as_nobody test -r "$PLUGIN" || skip_test "user nobody cannot read $PLUGIN (its path is not world-readable)"
cleanup_fn "ctl_cleanup $d/ctl"
log=$tmpdir/nbdkit.log
as_nobody nbdkit -f ${NBDKIT_DEBUG_OPTS:-} -U "$d/sock" -P "$d/pid" "$PLUGIN" size=16M uring=${URING:-off} \
    control="$d/ctl" 2>"$log" &
nbdkit_pid=$!
cleanup_fn "kill -KILL $nbdkit_pid 2>/dev/null; wait $nbdkit_pid 2>/dev/null"
cleanup_fn '[ "$rc" -ne 0 ] && { echo "--- nbdkit log:"; tail -20 "'"$log"'"; }'; [ -n "${KEEP_LOG:-}" ] && cleanup_fn "cp $log $KEEP_LOG"
wait_for 20 test -S "$d/sock" || fail "nbdkit (as nobody) did not come up: $(tail -3 "$log")"
wait_mounted "$d/ctl"

# The holder: another process of the same user with `disk` open, idle
# (any request of its own would wake a worker) until told to read.
as_nobody timeout 120 python3 -c '
import os, sys, time
d = sys.argv[1]
fd = os.open(d + "/ctl/disk", os.O_RDWR)
os.pwrite(fd, b"h" * 4096, 0)
open(d + "/held", "w").close()
while not os.path.exists(d + "/go"):
    time.sleep(0.1)
try:
    os.pread(fd, 4096, 0)
    print("holder: read succeeded")
except OSError as e:
    print("holder: " + e.strerror)
    sys.exit(0)
sys.exit(1)
' "$d" &
holder=$!
cleanup_fn "touch $d/go; kill $holder 2>/dev/null; wait $holder 2>/dev/null"
wait_for 20 test -e "$d/held" || fail "the holder could not open $d/ctl/disk"

kill -TERM "$nbdkit_pid"
wait_for 20 eval "! pid_alive $nbdkit_pid" ||
    fail "nbdkit (not root) did not stop within 20 s of SIGTERM while a process held disk open"
wait "$nbdkit_pid" 2>/dev/null || :
# The connection is gone: the holder's read fails, promptly.
touch "$d/go"
wait_for 20 eval "! pid_alive $holder" ||
    fail "the holder's read of disk still waits 20 s after nbdkit stopped"
wait "$holder" || fail "the holder's read of disk succeeded after nbdkit stopped"
! grep -qE '(^|: )error: ' "$log" || fail "nbdkit logged errors: $(grep -E '(^|: )error: ' "$log" | head -3)"
echo "PASS: $0"
