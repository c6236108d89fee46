#!/bin/bash
# In a guest on Debian's kernel (guest-lib.sh), the nbd paths this host's
# kernel cannot run: `uzram up --via nbd --swap` with nbd-client and the
# real nbd module, a workload in a memory cgroup swapping through it and
# checking out byte for byte, mm_stat showing the pages, `uzram down`
# undoing it all (swap-test.sh); then an ext4 file system through nbd: a
# tree copied in, fsck, diff, zeroes, fstrim (fs-test.sh).
source "$top_srcdir/tests/functions.sh"
source "$top_srcdir/tests/guest-lib.sh"
in_guest --mem 1G --timeout 1800

modprobe nbd || fail "modprobe nbd failed in the guest"
# Under TCG a page fault through nbdkit costs milliseconds: a smaller
# working set than the host tests', filled and checked in order (no
# passes in a scattered order, where every touch waits for a read).
echo "== swap through nbd"
SWAP_TEST_MIB=64 SWAP_TEST_PASSES=0 SWAP_TEST_BOUND=900 bash "$top_srcdir/tests/swap-test.sh" nbd || fail "swap through nbd"
echo "== ext4 through nbd"
FS_TEST_TREE=/usr/share/perl/5.36.0/unicore bash "$top_srcdir/tests/fs-test.sh" nbd || fail "ext4 through nbd"
[ -z "$(hung_tasks)" ] || fail "hung tasks in the guest: $(hung_tasks)"
echo "PASS: $0"
