#!/bin/bash
# The mount's life cycle: clear errors for a bad control=DIR, a missing DIR
# made, unmounted on SIGTERM, SIGINT and --exit-with-parent, a stale mount
# left by SIGKILL detected and mounted again, and a clean exit while a loop
# device still holds `disk`.
source "${top_srcdir:-$(dirname "$0")/..}/tests/functions.sh"
source "$top_srcdir/tests/control-lib.sh"

# --- bad directories: nbdkit refuses to start, saying why ---
bad_dir ()
{
    local dir=$1 want=$2 err
    err=$(timeout 20 nbdkit -f -U "$tmpdir/bad.sock" "$PLUGIN" size=1M \
            control="$dir" 2>&1) && fail "nbdkit started with control=$dir"
    [[ $err == *"$want"* ]] || fail "control=$dir: '$err', expected '$want'"
}
touch "$tmpdir/plainfile"
bad_dir "$tmpdir/plainfile" "is not a directory"
bad_dir "$tmpdir/no/such/parent" "parent directory does not exist"

# A missing directory whose parent exists is made.
start_zram size=1M control="$tmpdir/made"
wait_mounted "$tmpdir/made"
cleanup_fn "ctl_cleanup $tmpdir/made"
expect_bytes "$tmpdir/made/initstate" $'1\n'
stop_nbdkit "$nbdkit_pid"
wait_unmounted "$tmpdir/made"

# A directory another nbdkit is serving is refused, not mounted over.
start_ctl size=1M
bad_dir "$ctl" "is already a FUSE mount"
expect_bytes "$ctl/initstate" $'1\n'
stop_nbdkit "$nbdkit_pid"
wait_unmounted "$ctl"

# --- SIGTERM and SIGINT unmount ---
for sig in TERM INT; do
    start_ctl size=1M
    kill -$sig "$nbdkit_pid"
    timeout 20 tail --pid="$nbdkit_pid" -f /dev/null ||
        fail "nbdkit did not exit on SIG$sig"
    wait_unmounted "$ctl"
done

# --- --exit-with-parent: the parent dies, nbdkit exits and unmounts ---
mkdir "$tmpdir/ewp"
cleanup_fn "ctl_cleanup $tmpdir/ewp"
setsid bash -c 'nbdkit -f --exit-with-parent -U "$1/ewp.sock" \
    -P "$1/ewp.pid" "$2" size=1M control="$1/ewp" & wait' \
    _ "$tmpdir" "$PLUGIN" &
parent=$!
wait_mounted "$tmpdir/ewp"
ewp_pid=$(cat "$tmpdir/ewp.pid")
cleanup_fn "kill -KILL $ewp_pid 2>/dev/null"
kill -KILL "$parent"
wait "$parent" 2>/dev/null || :
timeout 20 tail --pid="$ewp_pid" -f /dev/null ||
    fail "nbdkit did not exit when its parent died"
wait_unmounted "$tmpdir/ewp"

# --- SIGKILL leaves a stale mount; the next start mounts again ---
start_ctl size=1M
stale=$ctl
kill -KILL "$nbdkit_pid"
wait "$nbdkit_pid" 2>/dev/null || :
err=$(stat "$stale" 2>&1) && fail "no stale mount after SIGKILL"
# With FUSE over io_uring (enable_uring=Y) the first request after the
# kill may instead be aborted while the kernel tears the rings down.
[[ $err == *"not connected"* || $err == *"connection abort"* ]] ||
    fail "after SIGKILL: $err"
start_zram size=1M control="$stale" 2> "$tmpdir/stale.err"
wait_mounted "$stale"
for (( i=0; i<50; i++ )); do
    grep -q "stale mount" "$tmpdir/stale.err" && break
    sleep 0.1
done
grep -q "$stale is a stale mount" "$tmpdir/stale.err" ||
    fail "no message about the stale mount: $(cat "$tmpdir/stale.err")"
expect_bytes "$stale/initstate" $'1\n'
[ "$(awk -v d="$stale" '$2 == d' /proc/mounts | wc -l)" = 1 ] ||
    fail "$stale is mounted more than once"
timeout 20 nbdsh -u "$uri" -c 'h.pwrite(b"x" * 4096, 0)' || fail "NBD after remount"
stop_nbdkit "$nbdkit_pid"
wait_unmounted "$stale"

# --- exit while a loop device holds `disk`: no hang, I/O errors after ---
start_ctl size=16M
attach_loop "$ctl/disk"
timeout 20 dd if=/dev/zero of="$loop" bs=64k count=16 oflag=direct status=none ||
    fail "writing to $loop"
kill -TERM "$nbdkit_pid"
timeout 30 tail --pid="$nbdkit_pid" -f /dev/null ||
    fail "nbdkit hung on SIGTERM with a loop device attached"
wait_unmounted "$ctl"
timeout 20 dd if="$loop" of=/dev/null bs=4k count=1 iflag=direct status=none 2>/dev/null &&
    fail "a read from $loop succeeded with the server gone"
rc=$?
[ $rc -ne 124 ] || fail "a read from $loop hung with the server gone"
# Ours, though its backing file now shows as "/disk" (the mount is gone),
# so detach_loop at exit would not recognise it.
timeout 20 losetup -d "$loop" || fail "detaching $loop after the server went"
echo "PASS: $0"
