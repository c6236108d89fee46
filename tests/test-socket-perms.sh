#!/bin/bash
# Who may connect to the Unix socket: uzram puts it in a 0700 directory
# owned by the user running nbdkit, so another user can't reach it.
# Each refusal must be EACCES ("Permission denied"), not any failure (a
# missing binary, a server that is not up).
source "$top_srcdir/tests/functions.sh"
need_tool nbdinfo runuser

# denied WHAT CMD...: CMD, run as nobody, must fail with EACCES.
denied ()
{
    local what=$1 out; shift
    if out=$(timeout 30 runuser -u nobody -- "$@" 2>&1 >/dev/null); then
        fail "user nobody could $what"
    fi
    [[ $out == *"Permission denied"* ]] ||
        fail "user nobody could not $what, but not for want of permission: $out"
    echo "nobody may not $what: ${out//$'\n'/ }"
}
export UZRAM_RUN=$tmpdir/run UZRAM_PLUGIN=$PLUGIN
uzram=$top_srcdir/scripts/uzram
name=perm-$$
cleanup_fn "timeout 60 $uzram down $name >/dev/null 2>&1"
chmod 755 "$tmpdir"
timeout 60 "$uzram" up --size 16M --name "$name" >/dev/null || fail "up failed"
sock=$UZRAM_RUN/$name/sock
[ -S "$sock" ] || fail "no socket at $sock"
[ "$(stat -c %a "$UZRAM_RUN/$name")" = 700 ] || fail "run dir mode is $(stat -c %a "$UZRAM_RUN/$name"), not 700"
timeout 30 nbdinfo --size "nbd+unix:///?socket=$sock" | grep -qx 16777216 ||
    fail "the owner cannot connect"
denied "connect to the socket" nbdinfo --size "nbd+unix:///?socket=$sock"
# The control files: only the owner may write (and, without allow_other,
# only the owner may even look).
denied "read mm_stat" cat "$UZRAM_RUN/$name/control/mm_stat"

# allow_other=true: others may read what the modes let them read, and no
# more: mm_stat (0444) yes, reset (0200) and disk (0600) no.
mkdir -m 0755 "$tmpdir/ctl"
start_zram size=16M control="$tmpdir/ctl" allow_other=true
timeout 30 runuser -u nobody -- cat "$tmpdir/ctl/mm_stat" >/dev/null ||
    fail "with allow_other=true, nobody could not read mm_stat"
denied "write reset with allow_other=true" sh -c "echo 1 > '$tmpdir/ctl/reset'"
denied "read disk with allow_other=true" dd if="$tmpdir/ctl/disk" of=/dev/null count=1
echo OK
