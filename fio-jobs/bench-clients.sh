#!/bin/bash
# bench-clients.sh: aggregate IOPS of one memory server with 1, 2, 4 and 8
# clients, each on its own device, in one run.
#
#   fio-jobs/bench-clients.sh [--runtime SECONDS] [--size SIZE]
#
# One server (`nbdkit -U SOCK zram num_devices=8`), and per client the
# TLS front README's "A memory server for many hosts" describes (its own
# nbdkit, --tls=require, the exportname filter, the nbd plugin to the
# server's socket).  Each client is one fio job, ioengine=nbd, 4 KiB at
# depth 16, on nbds://127.0.0.1:PORT/zramN.  For comparison, the same
# clients straight on the server's socket (nbd+unix:///zramN), no TLS and
# no front.  Prints a Markdown table: aggregate IOPS, and its ratio to one
# client's.
#
# fio 3.33's nbd engine cannot use TLS-PSK: libnbd refuses a URI's
# tls-psk-file unless the program allows local files, and fio does not.
# So the fronts here use X.509 (a throwaway CA and server certificate made
# with openssl, the client not verifying it: tls-verify-peer=false); after
# the handshake the record layer, and so the per-request cost, is the same
# as with PSK.
here=$(cd "$(dirname "$0")" && pwd)
prog=bench-clients
. "$here/bench-lib.sh"

runtime=10
size=256M
while [ $# -gt 0 ]; do
    case $1 in
    --runtime) runtime=$2; shift 2 ;;
    --size) size=$2; shift 2 ;;
    *) die "usage: $0 [--runtime SECONDS] [--size SIZE]" ;;
    esac
done
for t in nbdkit fio openssl python3; do
    command -v $t >/dev/null || die "$t is missing (scripts/install-deps.sh)"
done
[ -f "$PLUGIN" ] || die "no plugin at $PLUGIN: build first"

tmp=$(mktemp -d /tmp/bench-clients.XXXXXX)
pids=()
cleanup ()
{
    local p
    for p in "${pids[@]}"; do stop_pid "$p" || true; done
    [ -n "${KEEP:-}" ] || rm -rf "$tmp"
}
trap cleanup EXIT

pki=$tmp/pki
mkdir "$pki"
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$pki/ca-key.pem" \
    -out "$pki/ca-cert.pem" -days 1 -subj /CN=bench-ca 2>/dev/null
openssl req -newkey rsa:2048 -nodes -keyout "$pki/server-key.pem" \
    -out "$tmp/s.csr" -subj /CN=127.0.0.1 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1\n' > "$tmp/ext"
openssl x509 -req -in "$tmp/s.csr" -CA "$pki/ca-cert.pem" \
    -CAkey "$pki/ca-key.pem" -CAcreateserial -out "$pki/server-cert.pem" \
    -days 1 -extfile "$tmp/ext" 2>/dev/null

sock=$tmp/server.sock
nbdkit -f --exit-with-parent -U "$sock" -P "$tmp/server.pid" "$PLUGIN" \
    size="$size" num_devices=8 &
pids+=($!)
wait_for 20 test -S "$sock" || die "the server did not start"

# One front per client, on a free port.
ports=()
for n in 0 1 2 3 4 5 6 7; do
    for try in 1 2 3 4 5 6 7 8; do
        port=$(( 20000 + RANDOM % 30000 ))
        nbdkit -f --exit-with-parent -i 127.0.0.1 -p $port \
            -P "$tmp/front$n.pid" --tls=require --tls-certificates="$pki" \
            --filter=exportname nbd socket="$sock" dynamic-export=true \
            exportname=zram$n exportname-strict=true exportname-list=explicit \
            2> "$tmp/front$n.err" &
        pid=$!
        if wait_for 5 test -s "$tmp/front$n.pid"; then
            pids+=($pid); ports+=($port); break
        fi
        stop_pid $pid || true
    done
    [ ${#ports[@]} = $((n + 1)) ] || die "front $n did not start"
done

# run MODE RW CLIENTS: aggregate IOPS.
run ()
{
    local mode=$1 rw=$2 clients=$3 n job=$tmp/job.fio
    {
        echo "[global]"
        echo "ioengine=nbd"
        echo "size=$size"
        echo "thread"
        echo "group_reporting"
        echo "norandommap"
        echo "randrepeat=1"
        echo "buffer_compress_percentage=65"
        echo "buffer_compress_chunk=4k"
        echo "refill_buffers"
        echo "rw=$rw"
        echo "bs=4k"
        echo "iodepth=16"
        echo "time_based"
        echo "runtime=$runtime"
        echo "ramp_time=1"
        for (( n=0; n<clients; n++ )); do
            echo "[client$n]"
            if [ "$mode" = tls ]; then
                echo "uri=nbds://127.0.0.1:${ports[n]}/zram$n?tls-verify-peer=false"
            else
                echo "uri=nbd+unix:///zram$n?socket=$sock"
            fi
        done
    } > "$job"
    fio --output-format=json "$job" 2> "$tmp/fio.err" > "$tmp/fio.json" ||
        { cat "$tmp/fio.err" >&2; die "fio failed: $mode $rw $clients"; }
    python3 -c '
import json, sys
t = open(sys.argv[1]).read()
j = json.loads(t[t.index("{"):])["jobs"][0]   # the engine says "connected" first
print(round(j["read"]["iops"] + j["write"]["iops"]))' "$tmp/fio.json"
}

# Fill every device once, so that reads read compressed data.
for n in 0 1 2 3 4 5 6 7; do
    fio --name=fill --ioengine=nbd --uri="nbd+unix:///zram$n?socket=$sock" \
        --rw=write --bs=1M --size="$size" --iodepth=4 \
        --buffer_compress_percentage=65 --refill_buffers \
        > /dev/null 2> "$tmp/fill.err" || { cat "$tmp/fill.err" >&2; die "fill zram$n"; }
done

echo "| job | path | 1 client | 2 clients | 4 clients | 8 clients |"
echo "| --- | --- | --- | --- | --- | --- |"
for rw in randwrite randread; do
    for mode in tls unix; do
        row="| $rw 4k qd16 | $( [ $mode = tls ] && echo 'nbds:// via front' || echo 'nbd+unix direct' ) |"
        one=
        for c in 1 2 4 8; do
            iops=$(run $mode $rw $c)
            [ -n "$one" ] || one=$iops
            row+=" $iops ($(python3 -c "print('%.2fx' % ($iops / $one))")) |"
        done
        echo "$row"
    done
done
echo
echo "nproc $(nproc), load before: $(cut -d' ' -f1-3 /proc/loadavg), runtime ${runtime}s per point, size $size per device"
