#!/bin/bash
# Swap through uzram attached --via ublk (see swap-test.sh), in a guest
# where this kernel has no ublk (ublk-lib.sh).  In the guest, under TCG,
# the workload is smaller: 96 MiB in a 32 MiB cgroup, one pass out and
# back, for a longer bound.  The cgroup is not a quarter, as elsewhere:
# there the swap writes in flight can be all of a 16 MiB cgroup's pages,
# and its reclaim, finding nothing it can take, kills the workload.  Where
# the kernel has ublk it is swap-test.sh's own.
source "${top_srcdir:-$(dirname "$0")/..}/tests/functions.sh"
source "$top_srcdir/tests/ublk-lib.sh"
ublk_here_or_guest "$@"
if [ -n "${UZRAM_IN_GUEST:-}" ]; then
    export SWAP_TEST_MIB=${SWAP_TEST_MIB:-96} SWAP_TEST_CG_MIB=${SWAP_TEST_CG_MIB:-32}
    export SWAP_TEST_PASSES=${SWAP_TEST_PASSES:-0}
    export SWAP_TEST_BOUND=${SWAP_TEST_BOUND:-900}
    # No transparent huge pages in this throwaway guest: the cgroup's
    # reclaim swaps its pages out 2 MiB at a time until every one is
    # under writeback, and gives up (the OOM killer) after about a second
    # of waiting, before TCG's ublk has written them.
    echo never > /sys/kernel/mm/transparent_hugepage/enabled ||
        fail "cannot turn transparent huge pages off in the guest"
fi
bash "$top_srcdir/tests/swap-test.sh" ublk
