#!/bin/bash
# uzram up's start-up errors and swap priority:
# - nbdkit failing after its first checks (here mlockall, refused by a
#   memlock limit without CAP_IPC_LOCK) is reported at once, with nbdkit's
#   own message, and leaves no state; it used to go to syslog while up
#   waited 20 s to say the control filesystem "did not appear";
# - --swap turns swap on at priority 100 (zram-generator's, above disk
#   swap), or at --priority N; a bad --priority is refused;
# - --swap over a loop device warns that it can deadlock under global
#   memory pressure, and turns writeback throttling off on the device.
source "$top_srcdir/tests/functions.sh"
need_tool losetup mkswap swapon setpriv
export UZRAM_RUN=$tmpdir/run UZRAM_PLUGIN=$PLUGIN
uzram=$top_srcdir/scripts/uzram
a=up-a-$$
cleanup_fn "timeout 60 $uzram down $a >/dev/null 2>&1"

# --- a failure after nbdkit's fork point reaches the user ---
start=$SECONDS
if out=$( (ulimit -l 64
           timeout 60 setpriv --bounding-set -ipc_lock --inh-caps -ipc_lock \
               "$uzram" up --size 64M --swap --name "$a") 2>&1); then
    fail "up --swap succeeded with mlockall refused: $out"
fi
took=$((SECONDS - start))
echo "$out"
[[ $out == *"mlockall: Cannot allocate memory"* ]] ||
    fail "up did not pass on nbdkit's reason: $out"
[[ $out != *"did not appear"* ]] || fail "up waited for the control filesystem: $out"
[ "$took" -lt 15 ] || fail "up took $took s to report a start-up failure"
[ ! -e "$UZRAM_RUN/$a" ] || fail "the failed up left $UZRAM_RUN/$a"

# --- --priority ---
prio_of () { awk -v d="$(readlink -f "$1")" '$1 == d { print $5 }' /proc/swaps; }

out=$(timeout 60 "$uzram" up --size 64M --name "$a" --priority 5 2>&1) &&
    fail "--priority without --swap accepted"
[[ $out == *"--priority is for --swap"* ]] || fail "--priority without --swap: $out"
for p in abc 32768 -2 1x ""; do
    out=$(timeout 60 "$uzram" up --size 64M --name "$a" --swap --priority "$p" 2>&1) &&
        fail "--priority '$p' accepted"
    [[ $out == *"--priority"* ]] || fail "--priority '$p': $out"
done
[ ! -e "$UZRAM_RUN/$a" ] || fail "a refused up left $UZRAM_RUN/$a"

dev=$(timeout 120 "$uzram" up --size 64M --swap --name "$a" 2> "$tmpdir/up.err") || fail "up --swap failed: $(cat "$tmpdir/up.err")"
[ "$(prio_of "$dev")" = 100 ] || fail "swap on $dev at priority $(prio_of "$dev"), want 100: $(cat /proc/swaps)"
# Swap on a loop device over `disk` can deadlock under the whole
# machine's memory pressure (the kernel allocates for each swap write):
# up says so.  (This kernel has no ublk, so the default is disk.)
grep -q -- "swap --via disk can deadlock once the whole machine is out of memory" "$tmpdir/up.err" ||
    fail "up --swap --via disk did not warn of the deadlock: $(cat "$tmpdir/up.err")"
# And writeback throttling is off on it.
wbt=/sys/block/$(basename "$(readlink -f "$dev")")/queue/wbt_lat_usec
[ ! -e "$wbt" ] || [ "$(cat "$wbt")" = 0 ] || fail "$wbt is $(cat "$wbt"), want 0 on a swap device"
timeout 120 "$uzram" down "$a" || fail "down failed"
dev=$(timeout 120 "$uzram" up --size 64M --swap --priority 7 --name "$a") || fail "up --swap --priority 7 failed"
[ "$(prio_of "$dev")" = 7 ] || fail "swap on $dev at priority $(prio_of "$dev"), want 7"
timeout 120 "$uzram" down "$a" || fail "down failed"
echo OK
