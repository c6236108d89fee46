#!/bin/bash
# uzram@.service, uzram.slice and uzram-generator without a service
# manager: systemd-analyze verifies the units, the generator runs on a
# configuration in zram-generator's format, and the unit's own Exec lines
# run in the order systemd runs them (start, start-post, stop, stop-post)
# against the real plugin, loop devices, swap and mounts.  Where systemd is
# PID 1 the Debian package's test (test-deb.sh) starts the unit for real,
# and test-guest-systemd.sh does in a guest whose PID 1 is systemd.
source "$top_srcdir/tests/functions.sh"
need_tool systemd-analyze losetup mkswap swapon mkfs.ext4 /usr/bin/python3
[ "$(id -u)" = 0 ] || fail "needs root (loop devices, swap, mounts)"
[ -c /dev/fuse ] || skip_test "no /dev/fuse"

gen=$top_srcdir/scripts/uzram-generator
uzram=$top_srcdir/scripts/uzram
root=$tmpdir/root
export UZRAM_RUN=$tmpdir/run UZRAM_CONF_ROOT=$root UZRAM_PLUGIN=$PLUGIN
cleanup_fn "timeout 120 $uzram down --all >/dev/null 2>&1"

# --- the configuration: zram-generator's format on a machine of 8 GiB ---
mkdir -p "$root/proc" "$root/etc/uzram.conf.d" "$root/usr/lib/uzram.conf.d" "$tmpdir/mnt"
echo 'MemTotal:        8388608 kB' > "$root/proc/meminfo"
# uzram takes a regular file as its backing device too.
truncate -s 64M "$tmpdir/backing"
cat > "$root/etc/uzram.conf" <<EOF
[zram0]
# Overridden by the drop-in below.
zram-size = 1
zram-resident-limit = ram / 128
compression-algorithm = zstd(level=5) lz4
writeback-device = $tmpdir/backing

[zram1]
zram-size = 64
fs-type = ext4
mount-point = $tmpdir/mnt
options = discard,noatime

[zram2]
host-memory-limit = 4096

[zram3]
zram-size = 0

[zram4]
zram-size = 32
fs-type = nosuchfs
mount-point = $tmpdir/mnt4

[other]
zram-size = 64
EOF
cat > "$root/etc/uzram.conf.d/50-size.conf" <<'EOF'
[zram0]
zram-size = min(ram / 64, 4096)
EOF
# A vendor drop-in masked by the administrator's link to /dev/null.
printf '[zram9]\nzram-size = 64\n' > "$root/usr/lib/uzram.conf.d/60-vendor.conf"
ln -s /dev/null "$root/etc/uzram.conf.d/60-vendor.conf"

# --- the generator ---
out=$(timeout 10 "$gen" "$tmpdir/gen" "$tmpdir/early" "$tmpdir/late" 2>&1) || fail "generator failed: $out"
echo "$out"
echo "$out" | grep -q "zram2: system has too much memory" || fail "host-memory-limit not applied"
[ "$(readlink "$tmpdir/gen/swap.target.wants/uzram@zram0.service")" = /lib/systemd/system/uzram@.service ] ||
    fail "zram0 not pulled into swap.target"
[ -L "$tmpdir/gen/local-fs.target.wants/uzram@zram1.service" ] || fail "zram1 not pulled into local-fs.target"
grep -qx "Before=swap.target" "$tmpdir/gen/uzram@zram0.service.d/uzram-generator.conf" || fail "zram0's drop-in"
grep -qx "RequiresMountsFor=$tmpdir" "$tmpdir/gen/uzram@zram1.service.d/uzram-generator.conf" || fail "zram1's drop-in"
for n in zram2 zram3 zram9 other; do
    [ -z "$(find "$tmpdir/gen" -name "uzram@$n.service*")" ] || fail "$n should have no unit"
done
plan=$(timeout 10 "$gen" --print zram0) || fail "--print failed"
echo "$plan"
echo "$plan" | grep -qx "disksize=134217728" || fail "zram-size min(ram / 64, 4096) on 8 GiB is not 128 MiB"
echo "$plan" | grep -qx "mem_limit=67108864" || fail "zram-resident-limit ram / 128 is not 64 MiB"
echo "$plan" | grep -qx "swap_priority=100" || fail "swap-priority's default is not 100"
echo "$plan" | grep -qx "fs_type=swap" || fail "zram0 is not swap"
timeout 10 "$gen" --print zram1 | grep -qx "options=discard,noatime" || fail "zram1's options"
# Bad input: a clear message and a failure, never a device of another size.
cp -a "$root" "$tmpdir/bad"
printf '[zram0]\nzram-size = ram / / 2\n' > "$tmpdir/bad/etc/uzram.conf.d/90-bad.conf"
out=$(UZRAM_CONF_ROOT=$tmpdir/bad timeout 10 "$gen" "$tmpdir/gen-bad" 2>&1) && fail "a bad expression was accepted"
echo "$out" | grep -q "cannot parse\|unexpected" || fail "bad expression error unclear: $out"
printf '[zram0]\nswap-priority = 40000\n' > "$tmpdir/bad/etc/uzram.conf.d/90-bad.conf"
out=$(UZRAM_CONF_ROOT=$tmpdir/bad timeout 10 "$gen" --print zram0 2>&1) && fail "swap-priority 40000 was accepted"
echo "$out" | grep -q "outside -1..32767" || fail "swap-priority error unclear: $out"

# --- the units, verified ---
mkdir -p "$tmpdir/units"
sed "s|@sbindir@|$top_srcdir/scripts|g" "$top_srcdir/systemd/uzram@.service.in" > "$tmpdir/units/uzram@.service"
cp "$top_srcdir/systemd/uzram.slice" "$tmpdir/units/"
ln -s uzram@.service "$tmpdir/units/uzram@zram0.service"
timeout 60 systemd-analyze verify --man=no "$tmpdir/units/uzram@zram0.service" "$tmpdir/units/uzram.slice" \
    > "$tmpdir/verify" 2>&1 || { cat "$tmpdir/verify"; fail "systemd-analyze verify failed"; }
cat "$tmpdir/verify"
grep -q "uzram" "$tmpdir/verify" && fail "systemd-analyze verify complained about the units"

# --- the unit's commands, as systemd runs them ---
unit_cmd ()   # unit_cmd KEY INSTANCE: the command line of Exec KEY
{
    sed -n "s/^$1=-\{0,1\}//p" "$tmpdir/units/uzram@.service" | sed "s/%i/$2/g"
}
main_pid=
start_unit ()   # ExecStart in the background (its pid is the main pid), then ExecStartPost
{
    local t0=$(date +%s%N)
    $(unit_cmd ExecStart "$1") > "$tmpdir/$1.log" 2>&1 &
    main_pid=$!
    cleanup_fn "kill $main_pid 2>/dev/null"
    $(unit_cmd ExecStartPost "$1") 2>&1 | tee "$tmpdir/$1.post"
    local rc=${PIPESTATUS[0]}
    echo "$1: started in $(( ($(date +%s%N) - t0) / 1000000 )) ms"
    return "$rc"
}

start_unit zram0 || fail "zram0's ExecStartPost failed"
dir=$UZRAM_RUN/zram0
# The main pid is nbdkit itself, in the foreground: what systemd watches.
[ "$(cat /proc/$main_pid/comm)" = nbdkit ] || fail "ExecStart's process is $(cat /proc/$main_pid/comm), not nbdkit"
[ "$(cat "$dir/nbdkit.pid")" = "$main_pid" ] || fail "nbdkit's pid file is not the main pid"
tr '\0' ' ' < /proc/$main_pid/cmdline | grep -q "mlock=on" || fail "a swap device's nbdkit is not locked (mlock=on)"
dev=$(sed -n 's/^device=//p' "$dir/state")
awk -v d="$dev" '$1 == d { print; f = 1 } END { exit !f }' /proc/swaps > "$tmpdir/swaps" || fail "$dev is not swap"
[ "$(awk '{ print $5 }' "$tmpdir/swaps")" = 100 ] || fail "swap priority is not 100: $(cat "$tmpdir/swaps")"
# The settings went in through the control files.
grep -q '\[zstd\]' "$dir/control/comp_algorithm" || fail "comp_algorithm is not zstd"
[ "$(cat "$dir/control/disksize")" = 134217728 ] || fail "disksize is not 128 MiB"
[ "$(awk '{ print $4 }' "$dir/control/mm_stat")" = 67108864 ] || fail "mem_limit is not 64 MiB"
# The recompression algorithm and the backing device, set before disksize.
grep -q '^#1: .*\[lz4\]' "$dir/control/recomp_algorithm" ||
    fail "recomp_algorithm has not lz4 at priority 1: $(cat "$dir/control/recomp_algorithm")"
[ "$(cat "$dir/control/backing_dev")" = "$tmpdir/backing" ] ||
    fail "backing_dev is not $tmpdir/backing: $(cat "$dir/control/backing_dev")"
timeout 10 "$uzram" -o NAME,DISKSIZE,MOUNTPOINT zram0 | tee "$tmpdir/list"
grep -q "^zram0  *128M  *\[SWAP\]" "$tmpdir/list" || fail "uzram does not list zram0 as swap"
# Starting it twice is refused while the first runs.
out=$($(unit_cmd ExecStart zram0) 2>&1) && fail "a second ExecStart succeeded"
echo "$out" | grep -q "in use" || fail "second start's error unclear: $out"

$(unit_cmd ExecStop zram0) || fail "ExecStop failed"
awk -v d="$dev" '$1 == d { f = 1 } END { exit !f }' /proc/swaps && fail "swap still on after ExecStop"
losetup "$dev" 2>/dev/null | grep -q "$dir" && fail "$dev still attached after ExecStop"
wait_pid=0
for i in $(seq 100); do kill -0 "$main_pid" 2>/dev/null || { wait_pid=1; break; }; sleep 0.1; done
[ $wait_pid = 1 ] || fail "nbdkit still runs after ExecStop"
[ ! -e "$dir" ] || fail "ExecStop left $dir"
$(unit_cmd ExecStopPost zram0) || fail "ExecStopPost failed with nothing to do"

# A file system: made, mounted with its options, unmounted on stop.
start_unit zram1 || fail "zram1's ExecStartPost failed"
findmnt -n -o FSTYPE,OPTIONS "$tmpdir/mnt" | tee "$tmpdir/mnt.opts"
grep -q "^ext4 .*noatime" "$tmpdir/mnt.opts" || fail "zram1 is not ext4 with noatime on $tmpdir/mnt"
echo hello > "$tmpdir/mnt/f" && sync
$(unit_cmd ExecStop zram1) || fail "zram1's ExecStop failed"
findmnt "$tmpdir/mnt" >/dev/null && fail "zram1 still mounted"
[ ! -e "$UZRAM_RUN/zram1" ] || fail "zram1's state left"

# A start that fails half-way: systemd then stops the main process and runs
# ExecStopPost, which must leave nothing behind.
start_unit zram4 && fail "zram4 (fs-type nosuchfs) started"
dev=$(sed -n 's/^device=//p' "$UZRAM_RUN/zram4/state")
kill -TERM "$main_pid"
for i in $(seq 100); do kill -0 "$main_pid" 2>/dev/null || break; sleep 0.1; done
$(unit_cmd ExecStopPost zram4) || fail "ExecStopPost after a failed start failed"
[ ! -e "$UZRAM_RUN/zram4" ] || fail "a failed start left its state"
[ -z "$dev" ] || ! losetup "$dev" 2>/dev/null | grep -q zram4 || fail "a failed start left $dev attached"
# A device the configuration does not name: a clear refusal.
out=$($(unit_cmd ExecStart zram7) 2>&1) && fail "ExecStart of an unconfigured device succeeded"
echo "$out" | grep -q "no \[zram7\] section" || fail "unconfigured device's error unclear: $out"
echo OK
