# Shared by the guest tests (source after functions.sh).  A guest test is
# one script that runs twice: on the host it starts a guest on Debian's
# own kernel (scripts/guest.sh) and runs itself there; in the guest
# (UZRAM_GUEST=1) it does its work, as root, with the kernel's nbd, loop,
# zram and swap all its own.
#
# - in_guest [guest.sh options]   on the host: run this script in a guest
#                                 and exit with its status; skip (77)
#                                 only when qemu cannot run a guest here.
#                                 In the guest: return.
# - hung_tasks                    the guest kernel's hung-task reports.

in_guest ()
{
    [ -n "${UZRAM_GUEST:-}" ] && return 0
    local rc=0
    "$top_srcdir/scripts/guest.sh" "$@" -- bash "$0" || rc=$?
    [ $rc = 125 ] && skip_test "qemu cannot run a guest on this machine (guest.sh's reason above)"
    exit $rc
}

hung_tasks () { dmesg | grep -E 'blocked for more than|hung_task' || :; }
