# Shared by the control filesystem's tests: source "$top_srcdir/tests/functions.sh"
# first, then this.
#
# - start_ctl [nbdkit opts --] ARGS...
#                        start_zram with control=$ctl (a fresh directory in
#                        $tmpdir) and waits for the mount.  Sets $ctl.
# - wait_mounted DIR / wait_unmounted DIR
#                        poll /proc/mounts for at most 20 s; fail otherwise.
# - is_mounted DIR       true while DIR is a mount point.
# - attr_write FILE VAL  write(2) VAL (bytes as given) to FILE, as `echo >`
#                        does; prints OK or the errno's text ("Invalid
#                        argument", "Device or resource busy"...), or
#                        TIMEOUT.  Bounded to 10 s.
# - expect_ok FILE VAL, expect_err ERRTEXT FILE VAL
# - expect_bytes FILE EXPECTED
#                        FILE's bytes must be exactly EXPECTED.
# - field FILE N         the Nth whitespace-separated field of FILE.
# - attach_loop FILE     losetup --direct-io=on, detached at exit; sets $loop.
# - detach_loop LOOP FILE  losetup -d LOOP if it is still over FILE (also
#   when FILE's mount has gone).
# - hold_client NAME     an NBD client (nbdsh) that connects, writes block 0
#                        and stays connected; release_client NAME ends it.
# - interleave_nbd_disk SEED STEPS
#                        random writes through NBD ($uri) and $ctl/disk on
#                        the same few blocks, each read back at once through
#                        either side; fail on the first difference.
# - fio_verify BSRANGE   fio randwrite with crc32c verify, depth 32, on
#                        $loop; fail on any error.
# - enable_fuse_uring    FUSE over io_uring on for this test (enable_uring=Y),
#                        back as it was at exit; skip where the kernel or
#                        the plugin lacks it, or the setting is not ours.
need_tool nbdkit nbdsh losetup timeout

# The comp_algorithm file's bytes with the algorithms of this build and
# $1 in brackets: "lzo [lz4] zstd \n".
algorithms=$(nbdkit "$PLUGIN" --dump-plugin | sed -n 's/^zram_comp_algorithms=//p')
[ -n "$algorithms" ] || fail "nbdkit --dump-plugin gave no zram_comp_algorithms"
has_algorithm () { case " $algorithms " in *" $1 "*) return 0 ;; esac; return 1; }
comp_algorithm_text ()
{
    local a out=
    for a in $algorithms; do
        if [ "$a" = "$1" ]; then out+="[$a] "; else out+="$a "; fi
    done
    printf '%s\n' "$out"
}

wait_mounted ()
{
    wait_for 20 is_mounted "$1" || fail "$1 was not mounted within 20 s"
}
wait_unmounted ()
{
    wait_for 20 eval "! is_mounted '$1'" || fail "$1 was still mounted 20 s later"
}

# Unmounts whatever a failed test left at DIR (a loop device over its disk
# first), without waiting on a server that may be gone.
ctl_cleanup ()
{
    local d=$1 l
    for l in $(losetup -j "$d/disk" -O NAME -n 2>/dev/null); do
        swapoff "$l" 2>/dev/null
        umount -l "$l" 2>/dev/null
        losetup -d "$l" 2>/dev/null
    done
    if is_mounted "$d"; then
        echo "$0: $d still mounted at exit, unmounting" >&2
        umount -l "$d" 2>/dev/null || fusermount3 -u -z "$d" 2>/dev/null
    fi
    return 0
}

_nctl=0
start_ctl ()
{
    _nctl=$((_nctl+1))
    ctl=$tmpdir/ctl$_nctl
    mkdir "$ctl"
    # Registered before start_zram's stop_nbdkit, so it runs after it.
    cleanup_fn "ctl_cleanup $ctl"
    if printf '%s\n' "$@" | grep -qx -- '--'; then
        start_zram "$@" control="$ctl"
    else
        start_zram -- "$@" control="$ctl"
    fi
    wait_mounted "$ctl"
}

attr_write ()
{
    # One write(2) of exactly these bytes: bash's printf would split at
    # newlines, and each write is a separate store.
    local r rc=0
    r=$(timeout 10 python3 -c '
import os, sys
try:
    fd = os.open(sys.argv[1], os.O_WRONLY | os.O_TRUNC)
    n = os.write(fd, sys.argv[2].encode())
    os.close(fd)
    print("OK" if n == len(sys.argv[2].encode()) else "short write %d" % n)
except OSError as e:
    print(e.strerror)
' "$1" "$2") || rc=$?
    if [ $rc -eq 124 ]; then echo TIMEOUT; else echo "$r"; fi
}
expect_ok ()
{
    local r
    r=$(attr_write "$1" "$2")
    [ "$r" = OK ] || fail "writing $(printf %q "$2") to ${1##*/}: $r, expected success"
}
expect_err ()
{
    local r
    r=$(attr_write "$2" "$3")
    [ "$r" = "$1" ] ||
        fail "writing $(printf %q "$3") to ${2##*/}: '$r', expected '$1'"
}
expect_bytes ()
{
    local got
    got=$(timeout 10 cat "$1"; echo x) || fail "reading ${1##*/} failed"
    got=${got%x}
    [ "$got" = "$2" ] ||
        fail "${1##*/} is $(printf %q "$got"), expected $(printf %q "$2")"
}
field ()
{
    local v
    v=$(timeout 10 cat "$1") || fail "reading ${1##*/} failed"
    set -- $v "$2"
    local n=${!#}
    echo "${!n}"
}

attach_loop ()
{
    loop=$(timeout 20 losetup --direct-io=on -f --show "$1") ||
        fail "losetup --direct-io=on $1 failed"
    cleanup_fn "detach_loop $loop $1"
    [ "$(cat /sys/block/${loop#/dev/}/loop/dio)" = 1 ] ||
        fail "$loop over $1 did not get direct I/O"
}

# Detaches LOOP if it is still over FILE (not if another test has taken
# the device since).
detach_loop ()
{
    local back
    back=$(losetup -n -O BACK-FILE "$1" 2>/dev/null) || return 0
    # Once the server is gone and its mount with it, the kernel shows the
    # file's path inside the dead mount: /disk.
    case $back in
        "$2"|"$2 (deleted)"|"/${2##*/}") ;;
        *) return 0 ;;
    esac
    swapoff "$1" 2>/dev/null || :
    timeout 20 losetup -d "$1"
}

hold_client ()
{
    local name=$1 i
    rm -f "$tmpdir/$name.up" "$tmpdir/$name.go"
    timeout 120 nbdsh -u "$uri" -c "
import os, time
h.pwrite(b'c' * 4096, 0)
open('$tmpdir/$name.up', 'w').close()
deadline = time.time() + 100
while not os.path.exists('$tmpdir/$name.go') and time.time() < deadline:
    time.sleep(0.05)
" &
    eval "${name}_pid=\$!"
    cleanup_fn "touch $tmpdir/$name.go; kill \$${name}_pid 2>/dev/null; wait \$${name}_pid 2>/dev/null"
    for (( i=0; i<200; i++ )); do
        [ -e "$tmpdir/$name.up" ] && return 0
        kill -0 "$(eval echo \$${name}_pid)" 2>/dev/null ||
            fail "NBD client $name could not connect"
        sleep 0.1
    done
    fail "NBD client $name did not connect within 20 s"
}
release_client ()
{
    local name=$1 pid
    pid=$(eval echo \$${name}_pid)
    touch "$tmpdir/$name.go"
    wait "$pid" || fail "NBD client $name failed"
}

interleave_nbd_disk ()
{
    timeout 120 nbdsh -u "$uri" -c "
import os, random
B = 4096
random.seed($1)
fd = os.open('$ctl/disk', os.O_RDWR)
shadow = bytearray(80 * B)
for step in range($2):
    blk = random.randrange(64)                 # few blocks: many collisions
    n = random.choice((1, 1, 2, 8))
    off = blk * B + random.choice((0, 0, 512, 100))   # partial blocks too
    data = random.randbytes(n * B - (off % B) if off % B else n * B)
    if random.random() < 0.5:
        h.pwrite(data, off)
    else:
        assert os.pwrite(fd, data, off) == len(data)
    shadow[off:off + len(data)] = data
    # Read back through the other side at once.
    lo = blk * B
    want = bytes(shadow[lo:lo + n * B + B])
    got = os.pread(fd, len(want), lo) if random.random() < 0.5 else h.pread(len(want), lo)
    assert got == want, (step, blk, n, off)
os.fsync(fd)
os.close(fd)
" || fail "NBD and disk interleaved"
}

fio_verify ()
{
    need_tool fio
    timeout 300 fio --name=verify --filename="$loop" --ioengine=libaio --direct=1 \
        --rw=randwrite --bsrange="$1" --iodepth=32 --size=96M \
        --verify=crc32c --verify_fatal=1 --do_verify=1 --buffer_compress_percentage=60 \
        --refill_buffers --randrepeat=0 --verify_state_save=0 --output="$tmpdir/fio.out" ||
        { cat "$tmpdir/fio.out"; fail "fio verify on $loop"; }
    grep -q "err= 0" "$tmpdir/fio.out" || { cat "$tmpdir/fio.out"; fail "fio reported errors"; }
}

# wait_ring_threads PID PER_CPU: waits (at most 20 s) until nbdkit PID has
# PER_CPU ring threads (zram-ring*) per possible CPU: they start only once
# the kernel has answered FUSE_INIT, which may come a while after the
# mount appears on a loaded machine.
ring_thread_count ()
{
    local t n=0
    for t in /proc/$1/task/*; do
        case "$(cat "$t/comm" 2>/dev/null)" in zram-ring*) n=$((n + 1)) ;; esac
    done
    echo $n
}
possible_cpus ()
{
    python3 -c 'n=0
for r in open("/sys/devices/system/cpu/possible").read().strip().split(","):
    a, _, b = r.partition("-"); n += int(b or a) - int(a) + 1
print(n)'
}
wait_ring_threads ()
{
    local want=$(( $2 * $(possible_cpus) ))
    wait_for 20 eval '[ "$(ring_thread_count '"$1"')" -ge '"$want"' ]' ||
        fail "nbdkit has $(ring_thread_count "$1") ring threads (zram-ring*) 20 s after mounting, expected $want: the rings were not set up"
}

enable_fuse_uring ()
{
    local param=/sys/module/fuse/parameters/enable_uring old
    [ -e "$param" ] ||
        skip_test "this kernel has no FUSE over io_uring ($param is missing: CONFIG_FUSE_IO_URING, Linux 6.14+)"
    nbdkit "$PLUGIN" --dump-plugin | grep -qx 'zram_uring=yes' ||
        skip_test "the plugin was built without liburing (install liburing-dev and rebuild)"
    [ -w "$param" ] || skip_test "$param is not writable (needs root)"
    old=$(cat "$param")
    # Registered before the test's own clean-ups, so it runs last, once
    # nbdkit is gone.
    cleanup_fn "echo $old > $param"
    echo Y > "$param"
}
