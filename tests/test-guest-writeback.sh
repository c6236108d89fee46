#!/bin/bash
# The guest kernel's zram (Debian's 6.12: CONFIG_ZRAM_WRITEBACK, access
# times and block_state) as the reference for writeback: the same writes
# and control-file writes against zram0 and against uzram's control
# files, each with a loop device of 65 blocks as its backing device, and
# then bd_stat, mm_stat's counts, block_state's flags and every write's
# error compared.  The only difference allowed is the one between 6.12
# and the 6.16 uzram follows: an index past the end is EINVAL there and
# ERANGE here.
source "$top_srcdir/tests/functions.sh"
source "$top_srcdir/tests/guest-lib.sh"
source "$top_srcdir/tests/control-lib.sh"
in_guest --mem 512M --timeout 900

modprobe zram || fail "modprobe zram failed in the guest"
z=/sys/block/zram0
zbs=/sys/kernel/debug/zram/zram0/block_state
cleanup_fn "echo 1 > $z/reset"
start_ctl

aw () { local e; e=$( { printf '%s' "$2" > "$1"; } 2>&1 ) && echo OK || echo "${e##*: }"; }

# Two backing devices of 65 blocks (zram never uses block 0: 64 usable).
for n in 1 2; do
    truncate -s $((65 * 4096)) $tmpdir/bd$n
    attach_loop $tmpdir/bd$n
    eval bd$n=\$loop
done

# The same data for both: 40 random (huge), 40 text, 20 same-filled.
python3 - $tmpdir/data <<'PY'
import random, sys
random.seed(19)
B = 4096
with open(sys.argv[1], "wb") as f:
    for i in range(40): f.write(random.randbytes(B))
    for i in range(40):
        x = (b"uzram block %d " % i) * 200
        f.write(x[:B].ljust(B, b"\n"))
    for i in range(20): f.write(bytes([i + 1]) * B)
PY

log_z=$tmpdir/zram.log log_u=$tmpdir/uzram.log
# step NAME FILE VALUE: the same write on both, each answer logged.
step ()
{
    echo "$1: $(aw $z/$2 "$3")" >> $log_z
    echo "$1: $(aw $ctl/$2 "$3")" >> $log_u
}
snap ()
{
    echo "$1 bd_stat: $(cat $z/bd_stat)" >> $log_z
    echo "$1 bd_stat: $(cat $ctl/bd_stat)" >> $log_u
    # orig_data_size, same_pages, huge_pages, huge_pages_since: the counts
    # (compressed sizes and memory are the allocators' own).
    echo "$1 mm_stat: $(awk '{print $1, $6, $8, $9}' $z/mm_stat)" >> $log_z
    echo "$1 mm_stat: $(awk '{print $1, $6, $8, $9}' $ctl/mm_stat)" >> $log_u
    echo "$1 block_state: $(awk '{print $1 ":" $3}' $zbs | tr '\n' ' ')" >> $log_z
    echo "$1 block_state: $(awk '{print $1 ":" $3}' $ctl/block_state | tr '\n' ' ')" >> $log_u
}

step "writeback uninitialised" writeback idle
step "backing_dev /dev/null" backing_dev /dev/null
echo "backing_dev: $(cat $z/backing_dev)" >> $log_z
echo "backing_dev: $(cat $ctl/backing_dev)" >> $log_u
echo "$bd1" > $z/backing_dev || fail "zram backing_dev"
echo "$bd2" > $ctl/backing_dev || fail "uzram backing_dev"
step comp_algorithm comp_algorithm lz4
step disksize disksize 1M
step "backing_dev once initialised" backing_dev "$bd1"
dd if=$tmpdir/data of=/dev/zram0 bs=4k oflag=direct status=none || fail "dd zram0"
dd if=$tmpdir/data of=$ctl/disk bs=4k conv=notrunc status=none || fail "dd disk"
snap written
step "bogus" writeback bogus
step "page_index=9999" writeback page_index=9999
step "huge_idle" writeback huge_idle
step huge writeback huge
snap "after huge"
# (Files, not <(...): the guest has no /dev/fd.)
dd if=/dev/zram0 of=$tmpdir/back.z bs=4k count=100 iflag=direct status=none
dd if=$ctl/disk of=$tmpdir/back.u bs=4k count=100 status=none
cmp $tmpdir/back.z $tmpdir/data || fail "zram0's data after writeback"
cmp $tmpdir/back.u $tmpdir/data || fail "uzram's data after writeback"
snap "read back"
step "idle all" idle all
snap "idle"
step "limit" writeback_limit 5
step "limit on" writeback_limit_enable 1
step "idle with limit" writeback idle
snap "limited"
step "limit off" writeback_limit_enable 0
step "idle to full" writeback idle
snap "full"
step "page_index=41" writeback page_index=41
dd if=/dev/zram0 of=/dev/null bs=4k count=100 iflag=direct status=none
dd if=$ctl/disk of=/dev/null bs=4k count=100 status=none
snap "read again"
step reset reset 1
echo "backing_dev after reset: $(cat $z/backing_dev)" >> $log_z
echo "backing_dev after reset: $(cat $ctl/backing_dev)" >> $log_u

# Where 6.12 and the 6.16 uzram follows differ: an index past the end is
# EINVAL in 6.12, ERANGE in 6.16; and 6.12 allocates a backing block
# before it looks at the slot, so on a full backing device even
# page_index of a block already written back is ENOSPC, where 6.16 (which
# selects the slots first) finds nothing to do.
norm ()
{
    sed -E -e 's/^(page_index=9999: ).*/\1(6.12 EINVAL, 6.16 ERANGE)/' \
        -e 's/^(page_index=41: ).*/\1(6.12 ENOSPC, 6.16 OK)/' "$1"
}
echo "--- zram (guest kernel) ---"; cat $log_z
echo "--- uzram ---"; cat $log_u
norm $log_z > $log_z.n
norm $log_u > $log_u.n
if ! diff $log_z.n $log_u.n; then
    fail "uzram differs from the guest kernel's zram (above)"
fi
grep -q 'page_index=41: No space left on device' $log_z &&
    grep -q 'page_index=41: OK' $log_u ||
    fail "page_index of a written-back block: zram $(grep =41 $log_z), uzram $(grep =41 $log_u)"
grep -q 'page_index=9999: Invalid argument' $log_z &&
    grep -q 'page_index=9999: Numerical result out of range' $log_u ||
    fail "page_index past the end: zram $(grep 9999 $log_z), uzram $(grep 9999 $log_u)"
exit 0
