#!/bin/bash
# Who may connect to the Unix socket: uzram puts it in a 0700 directory
# owned by the user running nbdkit, so another user can't reach it.
source "$top_srcdir/tests/functions.sh"
need_tool nbdinfo runuser
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
if timeout 30 runuser -u nobody -- nbdinfo --size "nbd+unix:///?socket=$sock" >/dev/null 2>&1; then
    fail "user nobody connected to the socket"
fi
# The control files: only the owner may write (and, without allow_other,
# only the owner may even look).
if timeout 30 runuser -u nobody -- cat "$UZRAM_RUN/$name/control/mm_stat" >/dev/null 2>&1; then
    fail "user nobody read mm_stat"
fi
echo OK
