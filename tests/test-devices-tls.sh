#!/bin/bash
# One memory server for many hosts, on loopback TLS: each client reaches
# only its own device.  nbdkit gives a plugin no TLS PSK identity, so the
# mapping is a TLS front per client (README, "A memory server for many
# hosts"): an nbdkit that knows only that client's key and forwards only
# its export to the server's Unix socket.  Several clients each write and
# read back their own export; a client naming another's export, reaching
# another's front, or with a wrong key is refused; each client's
# mem_limit is its device's.
source "${top_srcdir:-$(dirname "$0")/..}/tests/functions.sh"
source "$top_srcdir/tests/control-lib.sh"
need_tool nbdinfo od

start_ctl 16M num_devices=3
server_sock=$sock

key () { od -An -tx1 -N32 /dev/urandom | tr -d ' \n'; }
# start_front NAME EXPORT: NAME's own front on 127.0.0.1, key in
# $tmpdir/NAME.psk; sets port_NAME.
start_front ()
{
    local name=$1 export=$2 try port pidfile pid i
    echo "$name:$(key)" > "$tmpdir/$name.psk"
    chmod 600 "$tmpdir/$name.psk"
    for try in 1 2 3 4 5 6 7 8; do
        port=$(( 20000 + RANDOM % 30000 ))
        pidfile=$tmpdir/front-$name-$try.pid
        nbdkit -f --exit-with-parent -i 127.0.0.1 -p $port -P "$pidfile" \
            --tls=require --tls-psk="$tmpdir/$name.psk" \
            --filter=exportname nbd socket="$server_sock" dynamic-export=true \
            exportname="$export" exportname-strict=true \
            exportname-list=explicit \
            2> "$tmpdir/front-$name.err" &
        pid=$!
        cleanup_fn "stop_nbdkit $pid"
        for i in $(seq 50); do
            [ -s "$pidfile" ] && break
            pid_alive $pid || break
            sleep 0.1
        done
        [ -s "$pidfile" ] && break
        wait $pid 2>/dev/null || true
    done
    [ -s "$pidfile" ] || { cat "$tmpdir/front-$name.err"; fail "$name's front did not start"; }
    eval "port_$name=$port"
}
# turi NAME PORT EXPORT [PSKFILE]
turi () { echo "nbds://$1@127.0.0.1:$2/$3?tls-psk-file=${4:-$tmpdir/$1.psk}"; }
tls_nbdsh () { local u=$1; shift; timeout 60 nbdsh -c "h.set_uri_allow_local_file(True); h.connect_uri('$u')" "$@"; }

start_front alice zram1
start_front bob zram2
start_front carol zram0

# Each client writes its own pattern at the same offsets, concurrently.
for c in alice bob carol; do
    p=port_$c
    e=$(case $c in alice) echo zram1 ;; bob) echo zram2 ;; carol) echo zram0 ;; esac)
    tls_nbdsh "$(turi $c ${!p} "$e")" -c "
import hashlib
for i in range(256):
    h.pwrite(hashlib.sha256(b'$c %d' % i).digest() * 128, i * 4096)
h.flush()
for i in range(256):
    assert h.pread(4096, i * 4096) == hashlib.sha256(b'$c %d' % i).digest() * 128, i
" > "$tmpdir/$c.out" 2>&1 &
    eval "pid_$c=\$!"
done
for c in alice bob carol; do
    p=pid_$c
    wait ${!p} || { cat "$tmpdir/$c.out"; fail "$c's round trip over TLS failed"; }
done
# On the server, each client's data is on its own device and nowhere else.
for pair in alice:zram1 bob:zram2 carol:zram0; do
    c=${pair%:*} d=${pair#*:}
    timeout 60 nbdsh -u "nbd+unix:///$d?socket=$server_sock" -c "
import hashlib
for i in range(256):
    assert h.pread(4096, i * 4096) == hashlib.sha256(b'$c %d' % i).digest() * 128, i
" || fail "$c's data is not on $d"
done

# Refused: another's export through one's own front, one's own key at
# another's front, a wrong key, and plain NBD.
tls_nbdsh "$(turi alice $port_alice zram2)" -c pass 2>/dev/null &&
    fail "alice reached bob's export zram2"
tls_nbdsh "$(turi alice $port_alice zram0)" -c pass 2>/dev/null &&
    fail "alice reached carol's export zram0"
tls_nbdsh "$(turi alice $port_bob zram2 "$tmpdir/alice.psk")" -c pass 2>/dev/null &&
    fail "alice's key opened bob's front"
echo "alice:$(key)" > "$tmpdir/wrong.psk"
tls_nbdsh "$(turi alice $port_alice zram1 "$tmpdir/wrong.psk")" -c pass 2>/dev/null &&
    fail "a wrong key for alice was accepted"
timeout 30 nbdinfo "nbd://127.0.0.1:$port_alice/zram1" >/dev/null 2>&1 &&
    fail "a plain connection was accepted"
# A client names its export: "" is not in the front's list either.
tls_nbdsh "$(turi alice $port_alice "")" -c pass 2>/dev/null &&
    fail "alice's front took the default export"
# alice's listing shows only her export.
tls_nbdsh "$(turi alice $port_alice zram1)" -c "
h2 = nbd.NBD()
h2.set_uri_allow_local_file(True)
h2.set_opt_mode(True)
h2.connect_uri('$(turi alice $port_alice "")')
names = []
h2.opt_list(lambda n, d: names.append(n))
assert names == ['zram1'], names
" || fail "alice's listing is not only zram1"

# Per-client memory: bob's device has a mem_limit, alice's has none.
echo 64K > "$ctl/zram2/mem_limit" || fail "zram2: mem_limit"
tls_nbdsh "$(turi bob $port_bob zram2)" -c "
import errno, os
try:
    for i in range(256, 4096):
        h.pwrite(os.urandom(4096), i * 4096)
    raise AssertionError('bob wrote past his mem_limit')
except nbd.Error as e:
    assert e.errnum == errno.ENOSPC, e
" || fail "bob's mem_limit was not applied"
tls_nbdsh "$(turi alice $port_alice zram1)" -c "
import os
h.pwrite(os.urandom(4 << 20), 1 << 20)
" || fail "alice was refused under bob's mem_limit"
pid_alive "$nbdkit_pid" || fail "the server died"
echo "PASS: $0"
