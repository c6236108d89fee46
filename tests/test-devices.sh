#!/bin/bash
# Many devices in one server: zram-control/hot_add and hot_remove, each
# device its own directory, `disk`, export zramN, pool, mem_limit and
# statistics.  hot_remove is EBUSY while an NBD client or an open `disk`
# holds the device (and for device 0), ENODEV for no such device, EINVAL
# for junk; ids are reused lowest first, as zram's.  Device 3 gets what
# device 0 gets in the other tests: a round trip, stats, mem_limit, reset.
source "${top_srcdir:-$(dirname "$0")/..}/tests/functions.sh"
source "$top_srcdir/tests/control-lib.sh"

start_ctl 8M
xuri () { echo "nbd+unix:///$1?socket=$sock"; }

# hot_add: each read creates the next device and shows its id.
for want in 1 2 3; do
    expect_bytes "$ctl/zram-control/hot_add" "$want"$'\n'
done
[ "$(ls -d "$ctl"/zram[0-9]* | xargs -n1 basename | tr '\n' ' ')" = \
  "zram0 zram1 zram2 zram3 " ] || fail "devices listed: $(ls "$ctl")"
# New devices start uninitialised, as zram's, and refuse NBD clients.
expect_bytes "$ctl/zram3/initstate" $'0\n'
timeout 20 nbdsh -u "$(xuri zram3)" -c pass 2>/dev/null &&
    fail "an NBD client connected to uninitialised zram3"
timeout 20 nbdsh -c "
h.set_opt_mode(True)
h.connect_uri('$(xuri "")')
names = []
h.opt_list(lambda n, d: names.append(n))
assert names == ['zram0', 'zram1', 'zram2', 'zram3'], names
" || fail "the exports are not zram0..zram3"

# Device 3, as device 0 elsewhere: configure, fill, read back through NBD
# and `disk`; its own stats, limit and reset.
echo 16M > "$ctl/zram3/disksize" || fail "zram3: disksize"
echo 32M > "$ctl/zram1/disksize" || fail "zram1: disksize"
expect_bytes "$ctl/zram3/disksize" $'16777216\n'
timeout 60 nbdsh -u "$(xuri zram3)" -c "
assert h.get_size() == 16 << 20, h.get_size()
for i in range(64):
    h.pwrite(bytes([i]) * 2048 + b'three' * 409 + bytes(3), i * 4096)
h.flush()
" || fail "zram3: NBD writes"
timeout 60 nbdsh -u "$(xuri zram1)" -c "
assert h.get_size() == 32 << 20, h.get_size()
h.pwrite(b'one!' * 1024, 0)
" || fail "zram1: NBD write"
timeout 60 nbdsh -u "$(xuri "")" -c "h.pwrite(b'zero' * 1024, 0)" ||
    fail "zram0: NBD write"
python3 - "$ctl" <<'PY' || fail "the devices' data got mixed"
import sys
ctl = sys.argv[1]
def block(dev, i):
    with open("%s/%s/disk" % (ctl, dev), "rb", buffering=0) as f:
        f.seek(i * 4096)
        return f.read(4096)
for i in range(64):
    assert block("zram3", i) == bytes([i]) * 2048 + b'three' * 409 + bytes(3), i
assert block("zram1", 0) == b'one!' * 1024
assert block("zram0", 0) == b'zero' * 1024
with open(ctl + "/disk", "rb", buffering=0) as f:     # the root is zram0
    assert f.read(4096) == b'zero' * 1024
PY
# Statistics are per device: orig_data_size (mm_stat's first field).
[ "$(field "$ctl/zram3/mm_stat" 1)" = $((64 * 4096)) ] ||
    fail "zram3: orig_data_size $(field "$ctl/zram3/mm_stat" 1)"
[ "$(field "$ctl/zram1/mm_stat" 1)" = 4096 ] ||
    fail "zram1: orig_data_size $(field "$ctl/zram1/mm_stat" 1)"
[ "$(field "$ctl/mm_stat" 1)" = 4096 ] ||
    fail "zram0: orig_data_size $(field "$ctl/mm_stat" 1)"
[ "$(field "$ctl/zram3/io_stat" 1)" = 0 ] || fail "zram3: failed reads"
# mem_limit is per device: zram1's limit leaves zram3 writing.
echo 4K > "$ctl/zram1/mem_limit" || fail "zram1: mem_limit"
[ "$(field "$ctl/zram1/mm_stat" 4)" = 4096 ] || fail "zram1: mm_stat's mem_limit"
[ "$(field "$ctl/zram3/mm_stat" 4)" = 0 ] || fail "zram3 got zram1's mem_limit"
timeout 60 nbdsh -u "$(xuri zram1)" -c "
import errno, os
try:
    for i in range(1, 256):
        h.pwrite(os.urandom(4096), i * 4096)
    raise AssertionError('zram1 wrote 1 MiB over a 4 KiB mem_limit')
except nbd.Error as e:
    assert e.errnum == errno.ENOSPC, e
" || fail "zram1: mem_limit not applied"
timeout 60 nbdsh -u "$(xuri zram3)" -c "
import os
h.pwrite(os.urandom(1 << 20), 1 << 20)
" || fail "zram3 refused writes under zram1's mem_limit"
# reset is per device.
echo 1 > "$ctl/zram3/reset" || fail "zram3: reset"
expect_bytes "$ctl/zram3/initstate" $'0\n'
[ "$(field "$ctl/zram3/mm_stat" 1)" = 0 ] || fail "zram3: stats after reset"
expect_bytes "$ctl/zram1/initstate" $'1\n'
timeout 30 nbdsh -u "$(xuri zram1)" -c "assert h.pread(4096, 0) == b'one!' * 1024" ||
    fail "zram3's reset touched zram1"

# hot_remove: in use (an NBD client, an open disk) is EBUSY.
uri=$(xuri zram1) hold_client c1
expect_err "Device or resource busy" "$ctl/zram-control/hot_remove" 1
release_client c1
exec {fd}<> "$ctl/zram1/disk"
expect_err "Device or resource busy" "$ctl/zram-control/hot_remove" 1
exec {fd}<&-
expect_err "Device or resource busy" "$ctl/zram-control/hot_remove" 0
expect_err "Invalid argument" "$ctl/zram-control/hot_remove" junk
expect_err "Invalid argument" "$ctl/zram-control/hot_remove" -1
expect_err "No such device" "$ctl/zram-control/hot_remove" 99999
# An open attribute file does not keep the device in the table.
exec {sfd}< "$ctl/zram2/mm_stat"
# FUSE sends `disk`'s release after close(2) returns: allow it a moment.
wait_for 10 eval '[ "$(attr_write "$ctl/zram-control/hot_remove" 1)" = OK ]' ||
    fail "hot_remove 1 failed once unused: $(attr_write "$ctl/zram-control/hot_remove" 1)"
expect_ok "$ctl/zram-control/hot_remove" 2
exec {sfd}<&-
expect_err "No such device" "$ctl/zram-control/hot_remove" 1
[ ! -e "$ctl/zram1" ] || fail "zram1/ is still there"
[ ! -e "$ctl/zram2/disksize" ] || fail "zram2/disksize is still there"
timeout 20 nbdsh -u "$(xuri zram1)" -c pass 2>/dev/null &&
    fail "export zram1 still served"
# The lowest free id comes back first, as a new, empty device.
expect_bytes "$ctl/zram-control/hot_add" $'1\n'
expect_bytes "$ctl/zram1/initstate" $'0\n'
[ "$(field "$ctl/zram1/mm_stat" 1)" = 0 ] || fail "the new zram1 has old stats"
expect_bytes "$ctl/zram-control/hot_add" $'2\n'
expect_bytes "$ctl/zram-control/hot_add" $'4\n'
# Device 0 at the root is as it was.
timeout 30 nbdsh -u "$(xuri zram0)" -c "assert h.pread(4096, 0) == b'zero' * 1024" ||
    fail "zram0 lost its data"
pid_alive "$nbdkit_pid" || fail "nbdkit died"
echo "PASS: $0"
