#!/bin/bash
# The full life cycle through the control files while NBD clients come and
# go: uninitialised (connections refused) -> comp_algorithm -> disksize ->
# clients (reset, disksize, comp_algorithm all EBUSY) -> last client gone
# -> reset -> uninitialised again, several rounds.
source "${top_srcdir:-$(dirname "$0")/..}/tests/functions.sh"
source "$top_srcdir/tests/control-lib.sh"

start_ctl

refused ()
{
    timeout 20 nbdsh -u "$uri" -c 'pass' 2>/dev/null &&
        fail "an NBD client connected to an uninitialised device"
    return 0
}

sizes=(64M 32M 4M)
algs=($algorithms)
for round in 0 1 2; do
    alg=${algs[round % ${#algs[@]}]}
    size=${sizes[round]}
    bytes=$(( ${size%M} * 1024 * 1024 ))

    expect_bytes "$ctl/initstate" $'0\n'
    refused
    echo "$alg" > "$ctl/comp_algorithm" || fail "round $round: comp_algorithm $alg"
    expect_bytes "$ctl/comp_algorithm" "$(comp_algorithm_text "$alg")"$'\n'
    refused                                     # still not initialised
    echo "$size" > "$ctl/disksize" || fail "round $round: disksize $size"
    expect_bytes "$ctl/disksize" "$bytes"$'\n'

    # A fresh device: the right size, all zeroes (nothing of the last round).
    timeout 30 nbdsh -u "$uri" -c "
assert h.get_size() == $bytes, h.get_size()
assert h.pread(1 << 20, 0) == bytes(1 << 20)
assert h.pread(4096, $bytes - 4096) == bytes(4096)
" || fail "round $round: the new device is not $bytes bytes of zeroes"

    hold_client a$round
    hold_client b$round
    for f in reset disksize comp_algorithm; do
        v=1; [ $f = comp_algorithm ] && v=$alg
        expect_err "Device or resource busy" "$ctl/$f" "$v"
    done
    # A third client comes and goes meanwhile; data written by one is read
    # by another.
    timeout 30 nbdsh -u "$uri" -c "
assert h.pread(4096, 0) == b'c' * 4096
h.pwrite(b'round $round'.ljust(4096, b'.'), 8192)
" || fail "round $round: a third client"
    release_client a$round
    expect_err "Device or resource busy" "$ctl/reset" 1    # b is still there
    timeout 30 nbdsh -u "$uri" -c "
assert h.pread(4096, 8192) == b'round $round'.ljust(4096, b'.')
" || fail "round $round: data across clients"
    expect_bytes "$ctl/initstate" $'1\n'
    release_client b$round

    # The last client has gone: reset works (allowing nbdkit a moment to
    # close the connection) and frees everything.
    for (( i=0; i<50; i++ )); do
        [ "$(attr_write "$ctl/reset" 1)" = OK ] && break
        sleep 0.1
    done
    [ $i -lt 50 ] || fail "round $round: reset still EBUSY 5 s after the last client"
    z8='       0'
    expect_bytes "$ctl/initstate" $'0\n'
    expect_bytes "$ctl/disksize" $'0\n'
    expect_bytes "$ctl/mm_stat" "$z8 $z8 $z8 $z8 $z8 $z8 $z8 $z8 $z8"$'\n'
    # Linux 6.18 puts the compressor back to its default on reset.
    expect_bytes "$ctl/comp_algorithm" "$(comp_algorithm_text lzo-rle)"$'\n'
    [ "$(stat -c %s "$ctl/disk")" = 0 ] || fail "round $round: disk not empty"
done
echo "PASS: $0"
