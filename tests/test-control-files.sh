#!/bin/bash
# The control filesystem, file for file: modes, owners, exact formats, and
# every EINVAL and EBUSY a write can give (zram's rules, issue 4).
source "${top_srcdir:-$(dirname "$0")/..}/tests/functions.sh"
source "$top_srcdir/tests/control-lib.sh"

start_ctl

# --- modes and owners, as sysfs gives them ---
declare -A modes=(
    [disksize]=-rw-r--r-- [comp_algorithm]=-rw-r--r--
    [initstate]=-r--r--r-- [mm_stat]=-r--r--r-- [io_stat]=-r--r--r--
    [debug_stat]=-r--r--r-- [stat]=-r--r--r-- [size]=-r--r--r--
    [classes]=-r--r--r--
    [reset]=--w------- [compact]=--w------- [mem_limit]=--w-------
    [mem_used_max]=--w------- [idle]=--w------- [algorithm_params]=--w-------
    [recomp_algorithm]=-rw-r--r-- [recompress]=--w-------
    [backing_dev]=-rw-r--r-- [writeback]=--w------- [bd_stat]=-r--r--r--
    [writeback_limit]=-rw-r--r-- [writeback_limit_enable]=-rw-r--r--
    [block_state]=-r--r--r-- [writeback_policy]=-rw-r--r--
    [policy_stat]=-r--r--r-- [ublk_dev]=-r--r--r--
    [disk]=-rw-------
)
me=$(id -un)
for f in "${!modes[@]}"; do
    got=$(stat -c '%A %U' "$ctl/$f") || fail "$f is missing"
    [ "$got" = "${modes[$f]} $me" ] || fail "$f: $got, expected ${modes[$f]} $me"
done
# The root: device 0's files, zram-control/ and the devices' directories
# (one device: zram0/, which lists the very same files).
listed=$(ls "$ctl" | sort | tr '\n' ' ')
want=$(printf '%s\n' "${!modes[@]}" zram-control zram0 | sort | tr '\n' ' ')
[ "$listed" = "$want" ] || fail "the directory lists '$listed', expected '$want'"
listed=$(ls "$ctl/zram0" | sort | tr '\n' ' ')
want=$(printf '%s\n' "${!modes[@]}" | sort | tr '\n' ' ')
[ "$listed" = "$want" ] || fail "zram0/ lists '$listed', expected '$want'"
for f in "${!modes[@]}"; do
    got=$(stat -c '%A %U' "$ctl/zram0/$f") || fail "zram0/$f is missing"
    [ "$got" = "${modes[$f]} $me" ] || fail "zram0/$f: $got, expected ${modes[$f]} $me"
done
[ "$(stat -c %A "$ctl/zram-control/hot_add")" = -r-------- ] ||
    fail "hot_add is $(stat -c %A "$ctl/zram-control/hot_add")"
[ "$(stat -c %A "$ctl/zram-control/hot_remove")" = --w------- ] ||
    fail "hot_remove is $(stat -c %A "$ctl/zram-control/hot_remove")"
[ "$(stat -c %A "$ctl")" = drwxr-xr-x ] || fail "the root is $(stat -c %A "$ctl")"

# Other users can't even look without allow_other (FUSE's default), though
# the path leads there.
if command -v runuser >/dev/null; then
    chmod 755 "$tmpdir"
    runuser -u nobody -- cat "$ctl/mm_stat" >/dev/null 2>&1 &&
        fail "user nobody read mm_stat"
    runuser -u nobody -- ls "$ctl" >/dev/null 2>&1 &&
        fail "user nobody listed the control directory"
    chmod 700 "$tmpdir"
fi

# --- formats of a fresh, uninitialised device (zram's bytes) ---
# ublk_dev (ours): empty without ublk=.
expect_bytes "$ctl/ublk_dev" ''
z8='       0'
expect_bytes "$ctl/disksize" $'0\n'
expect_bytes "$ctl/initstate" $'0\n'
expect_bytes "$ctl/size" $'0\n'
expect_bytes "$ctl/comp_algorithm" "$(comp_algorithm_text lzo-rle)"$'\n'
expect_bytes "$ctl/mm_stat" "$z8 $z8 $z8 $z8 $z8 $z8 $z8 $z8 $z8"$'\n'
expect_bytes "$ctl/io_stat" "$z8 $z8 0 $z8"$'\n'
expect_bytes "$ctl/debug_stat" $'version: 1\n'"0 $z8"$'\n'
expect_bytes "$ctl/stat" "$(printf '%8d %8d %8d %8d %8d %8d %8d %8d %8d %8d %8d %8d %8d %8d %8d %8d %8d' 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0)"$'\n'
head -1 "$ctl/classes" | grep -q '^ class  size       10%.*pages_per_zspage freeable$' ||
    fail "classes has no zsmalloc header: $(head -1 "$ctl/classes")"
tail -1 "$ctl/classes" | grep -q '^ Total ' || fail "classes has no Total line"
[ "$(stat -c %s "$ctl/disk")" = 0 ] || fail "disk is not empty while uninitialised"
err=$(timeout 10 cat "$ctl/disk" 2>&1) && fail "disk opened while uninitialised"
[[ $err == *"No such device or address"* ]] || fail "opening disk uninitialised: $err"

# --- the wrong direction, even for root (as kernfs) ---
expect_err "Permission denied" "$ctl/initstate" 1
expect_err "Permission denied" "$ctl/mm_stat" 1
err=$(timeout 10 cat "$ctl/reset" 2>&1) && fail "reset was readable"
[[ $err == *"Permission denied"* ]] || fail "reading reset: $err"
chmod 0666 "$ctl/disksize" 2>/dev/null && fail "chmod on disksize succeeded"

# --- malformed writes: EINVAL, nothing changes ---
long=$(printf '1%.0s' {1..5000})
for v in $'\n' x -1 1x 1K1 " 1" "1 " $'1\n\n' 0 0K 99999999999999999999999 \
         16E 17179869184G 5T 4398046511105 0x100 "$long"; do
    expect_err "Invalid argument" "$ctl/disksize" "$v"
done
for v in $'\n' foo LZO "lzo lz4" " lzo" $'lzo\n\n' "$long"; do
    expect_err "Invalid argument" "$ctl/comp_algorithm" "$v"
done
for v in $'\n' 5 1 -0 x " 0" 00x "$long"; do
    expect_err "Invalid argument" "$ctl/mem_used_max" "$v"
done
for v in $'\n' 0 x -1 65536 1x "$long"; do
    expect_err "Invalid argument" "$ctl/reset" "$v"
done
for v in $'\n' al "all all" ALL 1; do
    expect_err "Invalid argument" "$ctl/idle" "$v"
done
for v in $'\n' x -1 1Q 64MB 99999999999999999999999 "$long"; do
    expect_err "Invalid argument" "$ctl/mem_limit" "$v"
done
for v in level level= level=x priority=4 priority=-1 algo=nosuch \
         dict=/nonexistent dict= deflate.winbits=16 deflate.winbits=0 \
         "level=3 nosuch=1" "$long"; do
    expect_err "Invalid argument" "$ctl/algorithm_params" "$v"
done
expect_err "Numerical result out of range" "$ctl/algorithm_params" level=9999999999
expect_err "Invalid argument" "$ctl/idle" all          # nothing stored yet
expect_err "Invalid argument" "$ctl/compact" 1         # not initialised
expect_bytes "$ctl/initstate" $'0\n'
expect_bytes "$ctl/disksize" $'0\n'
expect_bytes "$ctl/comp_algorithm" "$(comp_algorithm_text lzo-rle)"$'\n'
expect_bytes "$ctl/mm_stat" "$z8 $z8 $z8 $z8 $z8 $z8 $z8 $z8 $z8"$'\n'

# --- accepted writes, with and without echo's newline ---
expect_ok "$ctl/mem_used_max" 0
expect_ok "$ctl/mem_used_max" $'0\n'
expect_ok "$ctl/reset" $'1\n'                          # a no-op, as in zram
expect_ok "$ctl/mem_limit" $'64M\n'
[ "$(field "$ctl/mm_stat" 4)" = 67108864 ] || fail "mem_limit 64M: $(cat "$ctl/mm_stat")"
expect_ok "$ctl/mem_limit" 5000                        # rounded up to a page
[ "$(field "$ctl/mm_stat" 4)" = 8192 ] || fail "mem_limit 5000: $(cat "$ctl/mm_stat")"
expect_ok "$ctl/mem_limit" 1g
[ "$(field "$ctl/mm_stat" 4)" = 1073741824 ] || fail "mem_limit 1g"
expect_ok "$ctl/mem_limit" 0
[ "$(field "$ctl/mm_stat" 4)" = 0 ] || fail "mem_limit 0"
echo 0 > "$ctl/mem_limit" || fail "echo 0 > mem_limit"

alg=lzo
for a in lz4 zstd; do has_algorithm $a && alg=$a; done
echo "$alg" > "$ctl/comp_algorithm" || fail "echo $alg > comp_algorithm"
expect_ok "$ctl/algorithm_params" "algo=$alg level=2"
expect_ok "$ctl/algorithm_params" $'level=1\n'
# Recompression's priorities and zram's other parameters are taken.
expect_ok "$ctl/algorithm_params" "priority=2 level=9 deflate.winbits=-12"
expect_ok "$ctl/algorithm_params" "priority=3 dict=/etc/hostname"
expect_ok "$ctl/algorithm_params" $'level=1\n'
expect_bytes "$ctl/comp_algorithm" "$(comp_algorithm_text $alg)"$'\n'
expect_ok "$ctl/disksize" 1000001                      # rounded up to 4 KiB
expect_bytes "$ctl/disksize" $'1003520\n'
expect_bytes "$ctl/initstate" $'1\n'
expect_bytes "$ctl/size" $'1960\n'
[ "$(stat -c %s "$ctl/disk")" = 1003520 ] || fail "disk size $(stat -c %s "$ctl/disk")"
expect_ok "$ctl/idle" $'all\n'
expect_ok "$ctl/compact" 1

# --- EBUSY once initialised (a bad value is still EINVAL first) ---
expect_err "Device or resource busy" "$ctl/disksize" 1M
expect_err "Device or resource busy" "$ctl/disksize" $'1003520\n'
expect_err "Invalid argument" "$ctl/disksize" x
expect_err "Device or resource busy" "$ctl/comp_algorithm" lzo
expect_err "Invalid argument" "$ctl/comp_algorithm" nosuch
expect_ok "$ctl/algorithm_params" level=1              # taken, as zram takes it
expect_err "Invalid argument" "$ctl/algorithm_params" level=x
expect_bytes "$ctl/disksize" $'1003520\n'
expect_bytes "$ctl/comp_algorithm" "$(comp_algorithm_text $alg)"$'\n'

# reset while `disk` is open: EBUSY, as with an NBD client.
exec {fd}<"$ctl/disk"
expect_err "Device or resource busy" "$ctl/reset" 1
exec {fd}<&-
expect_ok "$ctl/reset" 1
expect_bytes "$ctl/initstate" $'0\n'
expect_bytes "$ctl/disksize" $'0\n'
[ "$(stat -c %s "$ctl/disk")" = 0 ] || fail "disk size after reset"
echo "PASS: $0"
