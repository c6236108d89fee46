#!/bin/bash
# ublk=on in a server of many devices: every device gets its own
# /dev/ublkbM once initialised, num_devices='s and hot_add's alike, and
# zramN/ublk_dev names it.  Data written through zram3's reads back over
# the export zram3 and is in no other device; reset of zram3 and
# hot_remove of an added device are EBUSY while their block device is
# open and delete it once closed; hot_remove refused for an NBD client
# keeps the device and brings its block device back, under the same
# number; nbdkit's exit deletes every one.
# In a guest where this kernel has no ublk (ublk-lib.sh).
source "${top_srcdir:-$(dirname "$0")/..}/tests/functions.sh"
source "$top_srcdir/tests/control-lib.sh"
source "$top_srcdir/tests/ublk-lib.sh"
need_tool blockdev cmp dd
ublk_here_or_guest "$@"

xuri () { echo "nbd+unix:///$1?socket=$sock"; }
# The block device zramN/ublk_dev names, which must exist: FILE.
ublk_of ()
{
    local d
    d=$(timeout 10 cat "$1") || fail "reading $1"
    [[ $d == /dev/ublkb[0-9]* ]] || fail "${1#$ctl/} is '$d', not /dev/ublkbM"
    wait_for 20 test -b "$d" || fail "${1#$ctl/} names $d, which is not a block device"
    echo "$d"
}
# Waits for block device $1 to go; fails with $2 if it stays.
gone ()
{
    wait_for 20 eval "! test -e $1" || fail "$2"
}
ublk_devs () { ls /sys/class/ublk-char 2>/dev/null | grep '^ublkc[0-9]' | sort || :; }
before=$(ublk_devs)

start_ctl -- num_devices=4 ublk=on
for n in 0 1 2 3; do
    expect_bytes "$ctl/zram$n/ublk_dev" ''
done
[ "$(ublk_devs)" = "$before" ] || fail "ublk devices before any disksize: $(ublk_devs)"

# --- zram3's own block device, and zram0's and zram1's ---
expect_ok "$ctl/zram3/disksize" 32M
dev3=$(ublk_of "$ctl/zram3/ublk_dev")
[ "$(blockdev --getsize64 "$dev3")" = $((32 << 20)) ] ||
    fail "$dev3 is $(blockdev --getsize64 "$dev3") bytes, not zram3's 32 MiB"
for n in 0 1 2; do
    expect_bytes "$ctl/zram$n/ublk_dev" ''
done
expect_ok "$ctl/zram0/disksize" 8M
expect_ok "$ctl/zram1/disksize" 8M
dev0=$(ublk_of "$ctl/zram0/ublk_dev")
dev1=$(ublk_of "$ctl/zram1/ublk_dev")
expect_bytes "$ctl/ublk_dev" "$dev0"$'\n'
[ "$(printf '%s\n' "$dev0" "$dev1" "$dev3" | sort -u | wc -l)" = 3 ] ||
    fail "zram0, zram1 and zram3 share block devices: $dev0 $dev1 $dev3"
echo "zram0: $dev0, zram1: $dev1, zram3: $dev3"

# --- data through zram3's: over the export zram3, and nowhere else ---
# (The interleaving first: it expects blank blocks.)
uri=$(xuri zram3) ublk_nbd_interleave "$dev3" 31 100
timeout 60 dd if=/dev/urandom of="$tmpdir/data" bs=1M count=8 status=none
timeout 60 dd if="$tmpdir/data" of="$dev3" bs=1M oflag=direct status=none ||
    fail "writing $dev3"
timeout 60 nbdsh -u "$(xuri zram3)" -c "
assert h.pread(8 << 20, 0) == open('$tmpdir/data', 'rb').read()
" || fail "what went through $dev3 does not read back over the export zram3"
for n in 0 1; do
    timeout 60 nbdsh -u "$(xuri zram$n)" -c "
assert h.pread(8 << 20, 0) == bytes(8 << 20)
" || fail "zram$n is not all zeroes after writes through zram3's $dev3"
    [ "$(field "$ctl/zram$n/mm_stat" 1)" = 0 ] ||
        fail "zram$n stores $(field "$ctl/zram$n/mm_stat" 1) bytes after writes through $dev3"
done
timeout 60 cmp -n $((8 << 20)) "$tmpdir/data" "$dev3" ||
    fail "$dev3 does not read back what was written to it"

# --- reset of zram3: EBUSY while its block device is open ---
sleep 300 < "$dev3" &
holder=$!
cleanup_fn "kill $holder 2>/dev/null"
expect_err "Device or resource busy" "$ctl/zram3/reset" 1
[ -b "$dev3" ] || fail "$dev3 went away on a refused reset"
expect_bytes "$ctl/zram3/ublk_dev" "$dev3"$'\n'
timeout 60 cmp -n $((8 << 20)) "$tmpdir/data" "$dev3" ||
    fail "zram3 lost data on a refused reset"
kill $holder; wait $holder 2>/dev/null || :
expect_ok "$ctl/zram3/reset" 1
gone "$dev3" "$dev3 still there after zram3's reset"
expect_bytes "$ctl/zram3/ublk_dev" ''
[ -b "$dev0" ] && [ -b "$dev1" ] || fail "zram3's reset took another device's block device"

# --- hot_add: another device, another block device ---
expect_bytes "$ctl/zram-control/hot_add" $'4\n'
expect_bytes "$ctl/zram4/ublk_dev" ''
expect_ok "$ctl/zram4/disksize" 4M
dev4=$(ublk_of "$ctl/zram4/ublk_dev")
[ "$dev4" != "$dev0" ] && [ "$dev4" != "$dev1" ] || fail "zram4 got $dev4, already zram0's or zram1's"
timeout 60 dd if="$tmpdir/data" of="$dev4" bs=1M count=4 oflag=direct status=none ||
    fail "writing $dev4"
timeout 60 nbdsh -u "$(xuri zram4)" -c "
assert h.pread(4 << 20, 0) == open('$tmpdir/data', 'rb').read(4 << 20)
" || fail "what went through $dev4 does not read back over the export zram4"

# --- hot_remove: EBUSY while its block device is open, then it goes ---
sleep 300 < "$dev4" &
holder=$!
cleanup_fn "kill $holder 2>/dev/null"
expect_err "Device or resource busy" "$ctl/zram-control/hot_remove" 4
[ -b "$dev4" ] || fail "$dev4 went away on a refused hot_remove"
timeout 60 cmp -n $((4 << 20)) "$tmpdir/data" "$dev4" ||
    fail "zram4 lost data on a refused hot_remove"
kill $holder; wait $holder 2>/dev/null || :
expect_ok "$ctl/zram-control/hot_remove" 4
gone "$dev4" "$dev4 still there after zram4's hot_remove"
[ -e "$ctl/zram4" ] && fail "zram4/ still there after hot_remove"

# --- hot_remove refused for an NBD client: the block device comes back ---
uri=$(xuri zram1) hold_client c1
expect_err "Device or resource busy" "$ctl/zram-control/hot_remove" 1
old=$dev1
dev1=$(ublk_of "$ctl/zram1/ublk_dev")
[ "$dev1" = "$old" ] || fail "a refused hot_remove brought zram1's block device back as $dev1, not $old"
timeout 60 dd if="$dev1" bs=4096 count=1 iflag=direct status=none | grep -q '^cccc' ||
    fail "zram1's $dev1 does not serve zram1 after a refused hot_remove"
release_client c1

# --- nbdkit's exit deletes every block device ---
stop_nbdkit $nbdkit_pid
for d in "$dev0" "$dev1"; do
    gone "$d" "$d still there after nbdkit exited"
done
wait_for 20 eval '[ "$(ublk_devs)" = "$before" ]' ||
    fail "ublk devices left after nbdkit exited: $(ublk_devs)"
echo "PASS: $0"
