#!/usr/bin/env bash
# Parameters: each bad one stops nbdkit with one clear line naming it;
# sizes round up to 4 KiB; --dump-plugin lists the compressors; without
# size the device is uninitialised and refuses connections with a clear
# message.
source "$top_srcdir/tests/functions.sh"
source "$top_srcdir/tests/plugin-functions.sh"
need_tool nbdkit nbdsh nbdinfo

# bad ARGS... -- WORD: nbdkit must fail, printing one line containing WORD.
bad ()
{
    local args=() word
    while [ "$1" != -- ]; do args+=("$1"); shift; done
    word=$2
    if timeout 20 nbdkit -U - "$PLUGIN" "${args[@]}" --run true \
            >"$tmpdir/out" 2>"$tmpdir/err"; then
        fail "nbdkit accepted ${args[*]}"
    fi
    [ "$(wc -l < "$tmpdir/err")" -eq 1 ] ||
        { cat "$tmpdir/err"; fail "${args[*]}: not exactly one line"; }
    grep -qF -- "$word" "$tmpdir/err" ||
        { cat "$tmpdir/err"; fail "${args[*]}: error does not name $word"; }
    echo "${args[*]}: $(cat "$tmpdir/err")"
}

bad size=0 -- size=0
bad size=abc -- size=abc
bad 12Q -- size=12Q
bad size=-1 -- size=-1
bad size=2P -- size=2P
bad size=5T -- "size=5T: larger than the largest disk, 4T"
bad size=4398046511105 -- "larger than the largest disk, 4T"
bad size=99999999999999999999 -- size=99999999999999999999
bad 1G mem_limit=lots -- mem_limit=lots
bad 1G mem_limit= -- mem_limit
bad 1G comp_algorithm=nope -- "comp_algorithm=nope: not built in; available: lzo-rle lzo"
bad 1G frobnicate=1 -- frobnicate
bad 1G mlock=maybe -- mlock=maybe
bad 1G uring=sometimes -- "uring: expected auto, on or off, not 'sometimes'"
bad 1G uring_threads=0 -- "uring_threads: expected 1 to 4, not '0'"
bad 1G uring_threads=5 -- "uring_threads: expected 1 to 4, not '5'"
bad 1G uring_threads=two -- uring_threads

# --dump-plugin lists the compressors.
nbdkit "$PLUGIN" --dump-plugin > "$tmpdir/dump"
grep -qx 'zram_comp_algorithms=lzo-rle lzo.*' "$tmpdir/dump" || fail "--dump-plugin: $(cat "$tmpdir/dump")"
grep -qx 'zram_default_comp_algorithm=lzo-rle' "$tmpdir/dump" || fail "--dump-plugin: default not lzo-rle"
grep -qx 'thread_model=parallel' "$tmpdir/dump" || fail "thread model not parallel"

# Sizes: suffixes, rounding up to a block.
for s in 1:4096 4095:4096 4097:8192 1K:4096 64k:65536 3M:3145728 2GiB:2147483648 1T:1099511627776 4T:4398046511104; do
    start_zram "${s%%:*}"
    got=$(timeout 20 nbdinfo --size "$uri")
    [ "$got" = "${s#*:}" ] || fail "size ${s%%:*} gave $got"
    stop_nbdkit "$nbdkit_pid"
done

# Every compressor starts.
for alg in $(sed -n 's/^zram_comp_algorithms=//p' "$tmpdir/dump"); do
    start_zram 1M comp_algorithm=$alg mem_limit=512K
    nbdsh_py 'h.pwrite(b"x" * 5000, 3); assert h.pread(5000, 3) == b"x" * 5000'
    stop_nbdkit "$nbdkit_pid"
done

# mlock=true faults a swap-sized disk's tables in at once, as zram
# allocates its table: 1 GiB's are about 7 MiB (16-byte slots, 4-byte
# access times, 8-byte handles), all resident before any write.
start_zram 1G mlock=true
rss=$(awk '/^RssAnon:/ {print $2}' /proc/$nbdkit_pid/status)
echo "mlock=true, 1 GiB: RssAnon $rss KiB"
[ "$rss" -gt $((7 * 1024)) ] || fail "mlock=true: RssAnon $rss KiB: the 1 GiB disk's tables were not faulted in"
stop_nbdkit "$nbdkit_pid"
# A 64 GiB disk's tables (450 MiB) are past what that takes: they stay
# sparse, locked as they are touched.
start_zram 64G mlock=true
nbdsh_py 'h.pwrite(b"x" * (1 << 20), 5 << 30)'
lck=$(awk '/^VmLck:/ {print $2}' /proc/$nbdkit_pid/status)
rss=$(awk '/^VmRSS:/ {print $2}' /proc/$nbdkit_pid/status)
echo "mlock=true: VmLck $lck KiB, VmRSS $rss KiB"
[ "$lck" -gt $((16 * 1024)) ] || fail "mlock=true locked only $lck KiB"
[ "$rss" -lt $((12 * 1024)) ] || fail "mlock=true: VmRSS $rss KiB"
stop_nbdkit "$nbdkit_pid"

# No size: uninitialised, connections refused with the reason.
start_zram_logged comp_algorithm=lzo
if timeout 20 nbdinfo --size "$uri" > "$tmpdir/out" 2>&1; then
    fail "an uninitialised device served $(cat "$tmpdir/out")"
fi
grep -q 'not initialised' "$zlog" || fail "no 'not initialised' message in the log"
grep 'not initialised' "$zlog" | head -1
