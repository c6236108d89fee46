#!/bin/bash
# A file system on a loop device over `disk`: mkfs.ext4 (which discards the
# whole device first), mount, copy a tree, unmount, e2fsck -fn, mount again
# and compare.  Then fstrim frees what the deleted files held.
source "${top_srcdir:-$(dirname "$0")/..}/tests/functions.sh"
source "$top_srcdir/tests/control-lib.sh"
need_tool mkfs.ext4 e2fsck mount umount fstrim diff

start_ctl size=256M
attach_loop "$ctl/disk"
timeout 120 mkfs.ext4 -q -F "$loop" || fail "mkfs.ext4 $loop"
mnt=$tmpdir/mnt
mkdir "$mnt"
timeout 30 mount "$loop" "$mnt" || fail "mount $loop"
cleanup_fn "mountpoint -q $mnt && timeout 30 umount -l $mnt"

# A real tree of text and binaries: the sources, headers, some programs.
src=$tmpdir/src
mkdir "$src"
cp -a "$top_srcdir/plugin" "$top_srcdir/allocator" /usr/include/linux "$src/"
cp /usr/bin/nbdkit /usr/bin/fio "$src/" 2>/dev/null || :
timeout 120 cp -a "$src" "$mnt/tree" || fail "copying the tree"
timeout 60 umount "$mnt" || fail "umount"
timeout 120 e2fsck -fn "$loop" || fail "e2fsck -fn found problems"
timeout 30 mount -o ro "$loop" "$mnt" || fail "mount again"
diff -r "$src" "$mnt/tree" || fail "the tree differs after a remount"
timeout 60 umount "$mnt"

# Deleting and trimming gives the memory back.
timeout 30 mount "$loop" "$mnt" || fail "mount rw"
orig=$(field "$ctl/mm_stat" 1)
rm -rf "$mnt/tree"
sync -f "$mnt"       # the journal must release the blocks before fstrim sees them
timeout 60 fstrim "$mnt" || fail "fstrim"
after=$(field "$ctl/mm_stat" 1)
echo "fstrim: orig_data_size $orig -> $after"
[ "$after" -lt "$orig" ] || fail "fstrim freed nothing ($orig -> $after)"
timeout 60 umount "$mnt"
timeout 120 e2fsck -fn "$loop" || fail "e2fsck after fstrim"
echo "PASS: $0"
