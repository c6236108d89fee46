#!/bin/bash
# The uzram command: up/down/status round trips, status's formats, stale
# state after a killed nbdkit, and its errors.
source "$top_srcdir/tests/functions.sh"
need_tool losetup mkfs.ext4 /usr/bin/python3
export UZRAM_RUN=$tmpdir/run UZRAM_PLUGIN=$PLUGIN
uzram=$top_srcdir/scripts/uzram
a=cli-a-$$ b=cli-b-$$
cleanup_fn "timeout 60 $uzram down $a >/dev/null 2>&1; timeout 60 $uzram down $b >/dev/null 2>&1"

dev=$(timeout 60 "$uzram" up --size 64M --name "$a") || fail "up failed"
[ -b "$dev" ] || fail "up printed '$dev', not a block device"
losetup "$dev" | grep -q "$UZRAM_RUN/$a/control/disk" || fail "$dev is not a loop over the disk file"

# Write through the block device; status must see it.
timeout 60 dd if=/usr/bin/bash of="$dev" bs=1M count=1 oflag=direct status=none
timeout 10 "$uzram" > "$tmpdir/status"
cat "$tmpdir/status"
# zramctl's default columns, and its sizes.
head -n1 "$tmpdir/status" | grep -q '^NAME  *ALGORITHM  *DISKSIZE  *DATA  *COMPR  *TOTAL  *STREAMS  *MOUNTPOINT$' ||
    fail "the list's heading is not zramctl's"
grep -q "^$a  *lzo  *64M  *1M " "$tmpdir/status" || fail "list row for $a wrong"
[ "$(timeout 10 "$uzram" status "$a")" = "$(cat "$tmpdir/status")" ] || fail "'status NAME' differs from the list"
timeout 10 "$uzram" list --raw --bytes -o NAME,DISKSIZE,DATA "$a" > "$tmpdir/raw"
cat "$tmpdir/raw"
[ "$(sed -n 2p "$tmpdir/raw")" = "$a 67108864 1048576" ] || fail "list --raw --bytes -o wrong"
# An empty MOUNTPOINT is an empty field, as libsmartcols' raw output has it.
[ "$(timeout 10 "$uzram" -n -r -b -o +COMP-RATIO,DEVICE "$a" | awk -F'[ ]' '{ print NF, $NF }')" = "10 $dev" ] ||
    fail "-o +LIST did not add to the default columns"
[ "$(timeout 10 "$uzram" --output-all | head -n1 | wc -w)" = 14 ] || fail "--output-all is not 14 columns"
out=$(timeout 10 "$uzram" -o NAME,BOGUS 2>&1) && fail "an unknown column was accepted"
echo "$out" | grep -q "unknown column 'BOGUS'" || fail "unknown column error unclear: $out"
timeout 10 "$uzram" --json --bytes --output-all > "$tmpdir/json"
timeout 10 "$uzram" -J > "$tmpdir/json-human"
/usr/bin/python3 - "$tmpdir/json" "$tmpdir/json-human" "$a" "$dev" <<'PY' || fail "list --json wrong"
import json, sys
d = json.load(open(sys.argv[1]))["uzram"]
r = [x for x in d if x["name"] == sys.argv[3]][0]
assert r["disksize"] == 67108864 and r["data"] == 1048576, r
assert r["algorithm"] == "lzo" and r["device"] == sys.argv[4], r
assert 0 < r["compr"] < r["data"], r
assert r["comp-ratio"] == round(r["data"] / r["total"], 2), r
assert r["mountpoint"] is None, r
h = [x for x in json.load(open(sys.argv[2]))["uzram"] if x["name"] == sys.argv[3]][0]
assert h["disksize"] == "64M" and set(h) == {"name", "algorithm", "disksize", "data", "compr",
                                             "total", "streams", "mountpoint"}, h
PY

# A name in use is refused, and says so.
if out=$(timeout 60 "$uzram" up --size 64M --name "$a" 2>&1); then fail "up on a used name succeeded"; fi
echo "$out" | grep -q "in use" || fail "no clear error for a name in use: $out"
# --via nbd without the module: a clear error (or, where it exists, it works).
if [ ! -e /sys/module/nbd ] && ! modprobe -n nbd 2>/dev/null; then
    out=$(timeout 60 "$uzram" up --size 64M --name "$b" --via nbd 2>&1) && fail "--via nbd without the module succeeded"
    echo "$out" | grep -q "nbd module" || fail "no clear error for the missing nbd module: $out"
fi
out=$(timeout 10 "$uzram" up --bogus 2>&1) && fail "a bad option was accepted"
echo "$out" | grep -q "unknown option '--bogus'" || fail "bad option error unclear: $out"

timeout 120 "$uzram" down "$a" || fail "down failed"
[ ! -e "$UZRAM_RUN/$a" ] || fail "down left $UZRAM_RUN/$a"
losetup "$dev" 2>/dev/null | grep -q "$a" && fail "down left $dev attached"

# down after nbdkit was killed: the loop device, the stale mount and the
# state all go.
dev=$(timeout 60 "$uzram" up --size 64M --name "$b" --mount "$tmpdir/mnt") || fail "up --mount failed"
echo hello > "$tmpdir/mnt/f"; sync
kill -KILL "$(cat "$UZRAM_RUN/$b/nbdkit.pid")"
sleep 0.5
timeout 120 "$uzram" down "$b" || fail "down after a killed nbdkit failed"
grep -q " $tmpdir/mnt " /proc/mounts && fail "the file system is still mounted"
grep -q " $UZRAM_RUN/$b/control " /proc/mounts && fail "the control filesystem is still mounted"
[ ! -e "$UZRAM_RUN/$b" ] || fail "state left behind"

# up on a name whose earlier run left stale state (killed, never taken down).
dev=$(timeout 60 "$uzram" up --size 64M --name "$b") || fail "up failed"
kill -KILL "$(cat "$UZRAM_RUN/$b/nbdkit.pid")"
sleep 0.5
out=$(timeout 120 "$uzram" up --size 32M --name "$b" 2>&1) || fail "up over stale state failed: $out"
echo "$out"
echo "$out" | grep -q "stale state" || fail "up did not say it cleaned stale state"
[ "$(cat "$UZRAM_RUN/$b/control/disksize")" = 33554432 ] || fail "the new device is not 32M"
timeout 120 "$uzram" down --all || fail "down --all failed"
[ -z "$(ls "$UZRAM_RUN")" ] || fail "down --all left $(ls "$UZRAM_RUN")"
echo OK
