#!/bin/bash
# fs-test.sh VIA: a file system on uzram through `uzram up --mount --via
# VIA`.  A real tree copied in, umount, e2fsck -fn clean, mount again,
# diff -r identical.  Then the file system filled with zeroes until full:
# same_pages rises and mem_used_total does not.  Then fstrim after the
# files are deleted frees memory: notify_free rises, mem_used_total falls.
# FS_TEST_TREE names the tree (default /usr/share/perl, 21 MiB).
source "$top_srcdir/tests/functions.sh"
via=$1
need_tool mkfs.ext4 e2fsck fstrim diff losetup
export UZRAM_RUN=$tmpdir/run UZRAM_PLUGIN=$PLUGIN
uzram=$top_srcdir/scripts/uzram
name=fs-$via-$$
mnt=$tmpdir/mnt
tree=${FS_TEST_TREE:-/usr/share/perl}
cleanup_fn "timeout 120 $uzram down $name"
dev=$(timeout 300 "$uzram" up --size 384M --via "$via" --name "$name" --mount "$mnt") ||
    fail "uzram up --via $via --mount failed"
ctl=$UZRAM_RUN/$name/control
mm () { awk "{ print \$$1 }" "$ctl/mm_stat"; }
io () { awk "{ print \$$1 }" "$ctl/io_stat"; }

timeout 300 cp -a "$tree" "$mnt/tree" || fail "copying $tree in"
timeout 120 umount "$mnt" || fail "umount"
timeout 300 e2fsck -fn "$dev" || fail "e2fsck -fn found problems"
timeout 60 mount "$dev" "$mnt" || fail "mount again"
timeout 300 diff -r "$tree" "$mnt/tree" || fail "the tree differs after umount and mount"
echo "tree checks out: $(du -sh "$mnt/tree" | cut -f1)"

sync -f "$mnt"
same0=$(mm 6) used0=$(mm 3)
# dd stops at ENOSPC, as meant.
timeout 300 dd if=/dev/zero of="$mnt/zeroes" bs=1M oflag=direct status=none 2>/dev/null || :
[ "$(df --output=avail -B1M "$mnt" | tail -n1)" -lt 8 ] || fail "the zero file did not fill the file system"
sync -f "$mnt"
same1=$(mm 6) used1=$(mm 3)
zeroes=$(( $(stat -c %s "$mnt/zeroes") / 4096 ))
echo "filled with $zeroes zero blocks: same_pages $same0 -> $same1, mem_used_total $used0 -> $used1"
[ $((same1 - same0)) -ge $((zeroes * 9 / 10)) ] || fail "same_pages rose by $((same1 - same0)), not ~$zeroes"
# Zeroes cost nothing; allow 4 MiB for the file system's own metadata.
[ "$used1" -le $((used0 + (4 << 20))) ] || fail "mem_used_total rose from $used0 to $used1 for zeroes"

rm -rf "$mnt/tree" "$mnt/zeroes"
sync -f "$mnt"
free0=$(io 4) used2=$(mm 3)
timeout 120 fstrim "$mnt" || fail "fstrim"
echo 1 > "$ctl/compact"
free1=$(io 4) used3=$(mm 3)
echo "fstrim: notify_free $free0 -> $free1, mem_used_total $used2 -> $used3"
[ "$free1" -gt "$free0" ] || fail "fstrim freed no blocks (notify_free $free0 -> $free1)"
[ "$used3" -lt $((used2 / 2)) ] || fail "fstrim left mem_used_total at $used3 (was $used2)"
echo OK
