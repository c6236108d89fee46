#!/bin/bash
# TCP with TLS (PSK) on loopback: data goes through with the right key, and
# a plain connection or a wrong key is refused.
source "$top_srcdir/tests/functions.sh"
need_tool nbdsh nbdinfo od
psk=$tmpdir/keys.psk
echo "alice:$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')" > "$psk"
chmod 600 "$psk"
bad=$tmpdir/bad.psk
echo "alice:$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')" > "$bad"

# A free port on 127.0.0.1: try a few at random.
for try in 1 2 3 4 5 6 7 8; do
    port=$(( 20000 + RANDOM % 30000 ))
    pidfile=$tmpdir/tls$try.pid
    nbdkit -f --exit-with-parent -i 127.0.0.1 -p $port -P "$pidfile" \
        --tls=require --tls-psk="$psk" "$PLUGIN" size=64M 2> "$tmpdir/nbdkit.err" &
    pid=$!
    cleanup_fn "stop_nbdkit $pid"
    for i in $(seq 50); do [ -s "$pidfile" ] && break; kill -0 $pid 2>/dev/null || break; sleep 0.1; done
    [ -s "$pidfile" ] && break
    wait $pid 2>/dev/null
done
[ -s "$pidfile" ] || { cat "$tmpdir/nbdkit.err"; fail "nbdkit with TLS did not start"; }

uri="nbds://alice@127.0.0.1:$port/?tls-psk-file=$psk"
timeout 60 nbdsh -c "h.set_uri_allow_local_file(True); h.connect_uri('$uri')" -c '
import os
data = os.urandom(256 * 1024)
h.pwrite(data, 12345)
assert h.pread(len(data), 12345) == data
assert h.get_size() == 64 * 1024 * 1024
print("TLS round trip OK")
' || fail "TLS round trip failed"

timeout 30 nbdinfo "nbd://127.0.0.1:$port/" >/dev/null 2>&1 &&
    fail "a plain (non-TLS) connection was accepted"
timeout 30 nbdinfo "nbds://alice@127.0.0.1:$port/?tls-psk-file=$bad" >/dev/null 2>&1 &&
    fail "a connection with the wrong key was accepted"
echo OK
