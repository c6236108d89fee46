# Shared by the ublk tests: source "$top_srcdir/tests/functions.sh" first,
# then this.
#
# - ublk_here_or_guest   where this kernel has ublk, returns; else runs this
#                        test again inside a guest on Debian's kernel
#                        (scripts/guest.sh), which has it, and exits with its
#                        status.  Skips (77) only when neither can run.
# - ublk_dev_of PID      the /dev/ublkbN that nbdkit PID serves (the one
#                        whose /dev/ublkcN it has open), waiting up to 20 s
#                        for it.
# - ublk_nbd_interleave DEV SEED STEPS
#                        random writes through NBD ($uri) and DEV (direct
#                        I/O) on the same few blocks, each read back at once
#                        through either side; fail on the first difference.

ublk_here_or_guest ()
{
    local rc=0
    if [ -e /dev/ublk-control ] || modprobe ublk_drv 2>/dev/null; then
        return 0
    fi
    [ -z "${UZRAM_IN_GUEST:-}" ] &&
        [ -x "$top_srcdir/scripts/guest.sh" ] ||
        skip_test "this kernel has no ublk (no ublk_drv module) and the guest harness is not here"
    echo "this kernel has no ublk: running $0 in a guest on Debian's kernel"
    UZRAM_IN_GUEST=1 "$top_srcdir/scripts/guest.sh" --timeout 900 \
        -- bash "$0" "$@" || rc=$?
    [ $rc = 125 ] && skip_test "this kernel has no ublk, and qemu cannot run a guest here"
    exit $rc
}

ublk_dev_of ()
{
    local pid=$1 i f l
    for (( i=0; i<200; i++ )); do
        for f in /proc/"$pid"/fd/*; do
            l=$(readlink "$f" 2>/dev/null) || continue
            case $l in
            /dev/ublkc[0-9]*)
                if [ -b "/dev/ublkb${l#/dev/ublkc}" ]; then
                    echo "/dev/ublkb${l#/dev/ublkc}"
                    return 0
                fi ;;
            esac
        done
        kill -0 "$pid" 2>/dev/null || fail "nbdkit $pid exited before its ublk device came up"
        sleep 0.1
    done
    fail "nbdkit $pid brought up no ublk device within 20 s"
}

ublk_nbd_interleave ()
{
    timeout 300 nbdsh -u "$uri" -c "
import mmap, os, random
B = 4096
random.seed($2)
fd = os.open('$1', os.O_RDWR | os.O_DIRECT)
buf = mmap.mmap(-1, 16 * B)          # page-aligned, as O_DIRECT needs
shadow = bytearray(80 * B)
def ublk_read(lo, n):
    assert os.preadv(fd, [memoryview(buf)[:n]], lo) == n
    return bytes(buf[:n])
for step in range($3):
    blk = random.randrange(64)                 # few blocks: many collisions
    n = random.choice((1, 1, 2, 8))
    if random.random() < 0.5:
        # NBD takes any offset: partial blocks are read-modified-written.
        off = blk * B + random.choice((0, 0, 512, 100))
        data = random.randbytes(n * B - (off % B))
        h.pwrite(data, off)
    else:
        off = blk * B
        data = random.randbytes(n * B)
        buf[:len(data)] = data
        assert os.pwritev(fd, [memoryview(buf)[:len(data)]], off) == len(data)
    shadow[off:off + len(data)] = data
    # Read back through either side at once.
    lo = blk * B
    want = bytes(shadow[lo:lo + n * B + B])
    got = ublk_read(lo, len(want)) if random.random() < 0.5 else h.pread(len(want), lo)
    assert got == want, (step, blk, n, off)
os.close(fd)
" || fail "NBD and $1 interleaved"
}
