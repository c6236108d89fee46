#!/usr/bin/env bash
# zram's statistics over real NBD traffic: same-filled blocks (zeroes and a
# repeated word) in same_pages with no allocator memory, incompressible
# blocks in huge_pages, trim and zero giving the memory back (notify_free),
# and extents (nbdinfo --map) reporting holes for unwritten and zero blocks.
# The statistics come from -D zram.stats=1, printed at each close.
source "$top_srcdir/tests/functions.sh"
source "$top_srcdir/tests/plugin-functions.sh"
need_tool nbdkit nbdsh nbdinfo

B=4096
start_zram_logged size=4M

# map: nbdinfo --map as "offset length type" lines.
map () { timeout 60 nbdinfo --map "$uri" | awk '{print $1, $2, $3}'; }

# 1. Blocks 0-15 zeroes, 16-31 one repeated word: same pages, no memory.
nbdsh_py '
import struct
h.pwrite(bytes(16 * 4096), 0)
h.pwrite(struct.pack("<Q", 0x0123456789abcdef) * (16 * 512), 16 * 4096)
'
wait_close
expect_stat same_pages 32
expect_stat pages_stored 0
expect_stat orig_data_size $((32 * B))
expect_stat compr_data_size 0
expect_stat mem_used_total 0
expect_stat write_ios 2

# 2. Blocks 32-47 random: huge pages; 48-111 text: compressed.
head -c $((16 * B)) /dev/urandom > "$tmpdir/random"
cat /usr/include/*.h | head -c $((64 * B)) > "$tmpdir/text"
[ "$(stat -c %s "$tmpdir/text")" -eq $((64 * B)) ] || fail "not enough text in /usr/include"
export tmpdir
nbdsh_py '
import os
d = os.environ["tmpdir"]
h.pwrite(open(d + "/random", "rb").read(), 32 * 4096)
h.pwrite(open(d + "/text", "rb").read(), 48 * 4096)
'
wait_close
expect_stat same_pages 32
expect_stat huge_pages 16
expect_stat huge_pages_since 16
expect_stat pages_stored 80
expect_stat orig_data_size $((112 * B))
compr=$(stat_of compr_data_size)
used=$(stat_of mem_used_total)
# Huge pages count 4096 each; the text (C headers) compresses at least 2:1.
[ "$compr" -gt $((16 * B)) ] && [ "$compr" -lt $((16 * B + 32 * B)) ] ||
    fail "compr_data_size $compr out of range"
# (Few objects in many size classes: each class's first zspage is mostly
# empty, so no upper bound here.)
[ "$used" -ge "$compr" ] ||
    fail "mem_used_total $used for compr_data_size $compr"
echo "mm_stat after writes: $(last_mm_stat)"

# 3. Extents: zero blocks and unwritten blocks are holes.
map > "$tmpdir/map"
wait_close
cat > "$tmpdir/want" <<EOM
0 $((16 * B)) 3
$((16 * B)) $((96 * B)) 0
$((112 * B)) $((4 * 1024 * 1024 - 112 * B)) 3
EOM
diff -u "$tmpdir/want" "$tmpdir/map" || fail "nbdinfo --map"

# 4. Trim the random blocks and zero the text: the memory goes back.  A
# partial trim changes nothing; a partial zero rewrites its block.
nbdsh_py '
h.trim(4096, 16 * 4096 + 2048)
h.trim(16 * 4096, 32 * 4096)
h.zero(64 * 4096, 48 * 4096)
h.zero(100, 31 * 4096 + 10, nbd.CMD_FLAG_FAST_ZERO)
import struct
w = struct.pack("<Q", 0x0123456789abcdef) * 512
assert h.pread(4096, 16 * 4096) == w
b = bytearray(w)
b[10:110] = bytes(100)
assert h.pread(4096, 31 * 4096) == b
assert h.pread(80 * 4096, 32 * 4096) == bytes(80 * 4096)
'
wait_close
expect_stat notify_free 80
expect_stat miss_free 0
expect_stat huge_pages 0
expect_stat huge_pages_since 16
expect_stat same_pages 31
expect_stat pages_stored 1
expect_stat orig_data_size $((32 * B))
used=$(stat_of mem_used_total)
[ "$used" -le $((2 * B)) ] || fail "mem_used_total $used after freeing"
expect_stat discard_ios 4
echo "mm_stat after trim and zero: $(last_mm_stat)"

map > "$tmpdir/map"
wait_close
cat > "$tmpdir/want" <<EOM
0 $((16 * B)) 3
$((16 * B)) $((16 * B)) 0
$((32 * B)) $((4 * 1024 * 1024 - 32 * B)) 3
EOM
diff -u "$tmpdir/want" "$tmpdir/map" || fail "nbdinfo --map after trim"
