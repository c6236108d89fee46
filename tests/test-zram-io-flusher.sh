#!/usr/bin/env bash
# nbdkit's own worker threads, which serve NBD clients (nbd-client,
# nbdfuse: `uzram up --swap --via nbd|nbdfuse`), mark themselves
# PR_SET_IO_FLUSHER on their first request, so that swap I/O through them
# does not wait on the reclaim it is there to serve.  While a client is
# connected and has made requests, its worker threads carry the flag
# (PF_MEMALLOC_NOIO | PF_LOCAL_THROTTLE, what PR_SET_IO_FLUSHER sets, in
# /proc/PID/task/TID/stat's flags); without CAP_SYS_RESOURCE
# the refusal is logged once, as an error with mlock=on, and the flag is
# checked in a guest (guest-lib.sh) instead.  The behaviour
# under global memory pressure is the guest harness's to test.
source "$top_srcdir/tests/functions.sh"
source "$top_srcdir/tests/plugin-functions.sh"
need_tool nbdkit nbdsh python3

# Can this process set it at all?  (It needs CAP_SYS_RESOURCE, which a
# container may withhold even from root.)
can_flush=$(python3 -c '
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
print(1 if libc.prctl(57, 1, 0, 0, 0) == 0 else 0)')

start_zram_logged --threads 4 -- size=64M mlock=on
export nbdkit_pid tmpdir
nbdsh_py '
import glob, os
# PF_MEMALLOC_NOIO | PF_LOCAL_THROTTLE: either will do, should a kernel
# keep one of them elsewhere.
PR_IO_FLUSHER = 0x00080000 | 0x00100000
# Several requests in flight at once, so that more than one worker serves.
buf = nbd.Buffer(65536)
for i in range(32):
    h.aio_pwrite(buf, i * 65536)
while h.aio_in_flight() > 0:
    h.poll(-1)
h.pread(4096, 0)
h.flush()
flagged = 0
for stat in glob.glob("/proc/%s/task/*/stat" % os.environ["nbdkit_pid"]):
    flags = int(open(stat).read().rsplit(")", 1)[1].split()[6])
    flagged += bool(flags & PR_IO_FLUSHER)
open(os.environ["tmpdir"] + "/flagged", "w").write(str(flagged))
'
flagged=$(cat "$tmpdir/flagged")
wait_close
errors=$(grep -c 'error: prctl PR_SET_IO_FLUSHER' "$zlog" || :)
echo "nbdkit threads flagged as I/O flushers: $flagged; refusals logged: $errors"
if [ "$can_flush" = 1 ]; then
    [ "$errors" = 0 ] || fail "PR_SET_IO_FLUSHER refused in nbdkit though this shell may set it"
    [ "$flagged" -ge 1 ] || fail "no nbdkit thread is an I/O flusher after serving requests"
else
    # Every worker tried and failed: one line for them all.
    [ "$errors" = 1 ] || fail "$errors log lines for the PR_SET_IO_FLUSHER refusal, want 1"
    [ "$flagged" = 0 ] || fail "$flagged threads flagged though prctl is refused here"
    # Whether the workers carry the flag, then, in a guest on Debian's
    # kernel, where root has every capability.
    echo "PR_SET_IO_FLUSHER needs CAP_SYS_RESOURCE, which this machine withholds even from root: checking the flag in a guest"
    [ -z "${UZRAM_GUEST:-}" ] || fail "PR_SET_IO_FLUSHER refused in the guest too"
    source "$top_srcdir/tests/guest-lib.sh"
    in_guest --mem 512M
fi
