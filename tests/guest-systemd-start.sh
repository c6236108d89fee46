#!/bin/bash
# guest-systemd-start.sh DEB ZRAM_GENERATOR_DEB: run by scripts/guest.sh
# (the guest branch) inside its guest, whose root is a RAM overlay over the
# host's, so nothing here touches the host.  Installs uzram's package and
# Debian's systemd-zram-generator, boots systemd as PID 1 of a new PID
# namespace (the guest's own PID 1 is guest.sh's init), and times
# `systemctl start uzram@zram0` and `systemctl start dev-zram0.swap`
# (zram-generator with the kernel's zram) to swap on, alternating.
#   scripts/guest.sh --mem 2G --timeout 1100 -- bash tests/guest-systemd-start.sh \
#       BUILD/uzram_*.deb BUILD/systemd-zram-generator_*.deb
# (both .deb files in the build folder, which the guest shares).
set -u
export PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C
deb=$1 zgdeb=$2
uname -r
say () { echo "$(cut -d' ' -f1 /proc/uptime) $*"; }
say installing
# man-db's trigger rebuilds its index: minutes under TCG, of no use here.
rm -f /var/lib/man-db/auto-update
timeout 300 dpkg -i "$deb" "$zgdeb" > /tmp/dpkg.log 2>&1 || { cat /tmp/dpkg.log; exit 1; }
say installed
modprobe fuse; modprobe zram
printf '[zram0]\nzram-size = 256\n' > /etc/uzram.conf
printf '[zram0]\nzram-size = 256\n' > /etc/systemd/zram-generator.conf
# systemd must not start the host's services in here: only what swap needs.
unshare --pid --fork --mount-proc --propagation unchanged \
    /lib/systemd/systemd --system --unit=sysinit.target --log-target=kmsg > /tmp/systemd.out 2>&1 &
upid=$!
say "systemd started"
for i in $(seq 600); do
    sd=$(pgrep -P "$upid" -x systemd)
    [ -n "$sd" ] && [ -S /run/systemd/private ] && break
    sleep 0.5
done
echo "systemd: host pid $sd"
inns () { nsenter -t "$sd" -p -m "$@"; }
say "systemd up"
# zram-generator takes a PID namespace for a container and makes nothing;
# in its test mode (ZRAM_GENERATOR_ROOT) it writes the units all the same,
# into /run/systemd/system here, where daemon-reload leaves them.
inns env ZRAM_GENERATOR_ROOT=/ /lib/systemd/system-generators/zram-generator /run/systemd/system
ls /run/systemd/system
inns systemctl daemon-reload
inns timeout 300 systemctl is-system-running --wait; say "state after wait: $?"
inns systemctl list-jobs --no-pager | head
inns systemctl --failed --no-legend | head
ls /run/systemd/generator/swap.target.wants/ 2>&1
inns systemctl status 'uzram@zram0.service' --no-pager | head -5
inns systemctl status 'dev-zram0.swap' 'systemd-zram-setup@zram0.service' --no-pager 2>&1 | head -12
cat /proc/swaps
stop_all () {
    inns systemctl stop uzram@zram0.service dev-zram0.swap systemd-zram-setup@zram0.service 2>/dev/null
}
for rep in 1 2 3; do
  for unit in uzram@zram0.service dev-zram0.swap; do
    stop_all
    sync; sleep 2
    t0=$(date +%s%N)
    inns timeout 300 systemctl start "$unit" || { inns systemctl status "$unit" --no-pager | tail -20; }
    t1=$(date +%s%N)
    echo "FIGURE $unit rep $rep: systemctl start to swap on $(( (t1 - t0) / 1000000 )) ms (load $(cut -d' ' -f1 /proc/loadavg))"
    tail -n +2 /proc/swaps
  done
done
stop_all
pid=$(inns systemctl show -P MainPID uzram@zram0.service)
inns systemctl start uzram@zram0.service
pid=$(inns systemctl show -P MainPID uzram@zram0.service)
echo "main pid (ns) $pid"; inns cat /proc/$pid/comm /proc/$pid/cgroup
inns systemctl show -P MemoryCurrent uzram.slice
inns systemctl stop uzram@zram0.service
cat /proc/swaps
kill -TERM "$sd"
