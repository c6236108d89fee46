#!/bin/bash
# uzram@.service under a real service manager: a guest whose PID 1 is
# systemd (guest.sh --systemd) with this build installed where `make
# install` puts it.  daemon-reload runs uzram-generator on /etc/uzram.conf;
# `systemctl start uzram@zram0` brings swap on at priority 100 on
# /dev/ublkbN (the guest kernel has ublk, the default there) with nbdkit
# as the unit's main pid in uzram.slice's cgroup, charged its memory;
# `systemctl stop` takes it down swap first, so the server sees no I/O
# error; a drop-in's UZRAM_VIA=disk attaches a loop device instead.
# Then start-to-swap-on is timed against systemd-zram-generator's
# dev-zram0.swap with the guest kernel's zram, in the same guest, each
# UZRAM_SYSTEMD_REPS times (default 1), alternating: lines "FIGURE ...".
source "$top_srcdir/tests/functions.sh"
source "$top_srcdir/tests/guest-lib.sh"
need_tool /lib/systemd/systemd /lib/systemd/systemd-udevd /lib/systemd/system-generators/zram-generator
reps=${UZRAM_SYSTEMD_REPS:-1}
in_guest --systemd --mem 1G --timeout $(( 600 + 150 * reps ))

[ "$(cat /proc/1/comm)" = systemd ] || fail "PID 1 is $(cat /proc/1/comm), not systemd"
ms () { echo $(( ($(date +%s%N) - $1) / 1000000 )); }

# --- install this build where make install puts it (the guest's layer) ---
b=$top_builddir
ival () { sed -n "s/^$1=//p" "$b/uzram"; }
sbindir=$(sed -n 's|^ExecStart=\(.*\)/uzram serve %i$|\1|p' "$b/uzram@.service")
unitdir=$(sed -n 's/^UNIT_DIR = .*"\(.*\)")$/\1/p' "$b/uzram-generator")
[ -n "$sbindir" ] && [ -n "$unitdir" ] && [ -n "$(ival installed_plugindir)" ] ||
    fail "cannot tell the install paths from $b's uzram, uzram@.service and uzram-generator"
install -D -m 755 "$b/uzram" "$sbindir/uzram"
install -D -m 755 "$b/uzram-generator" "$(ival installed_generator)"
install -D -m 644 "$top_srcdir/scripts/lib.sh" "$(ival installed_libsh)"
install -D -m 755 "$b/plugin/.libs/nbdkit-zram-plugin.so" "$(ival installed_plugindir)/nbdkit-zram-plugin.so"
install -D -m 644 "$b/uzram@.service" "$unitdir/uzram@.service"
install -D -m 644 "$top_srcdir/systemd/uzram.slice" "$unitdir/uzram.slice"
unset UZRAM_PLUGIN UZRAM_GENERATOR UZRAM_CONF_ROOT UZRAM_RUN UZRAM_VIA

printf '[zram0]\nzram-size = 256\ncompression-algorithm = lz4\n' > /etc/uzram.conf
printf '[zram0]\nzram-size = 256\ncompression-algorithm = lz4\n' > /etc/systemd/zram-generator.conf
# zram-generator's swap unit waits for dev-zram0.device, which only udev
# announces: udevd runs before the generators (zram-generator's loads
# zram), and is asked again for zram0 in case the module came first.
timeout 120 systemctl start systemd-udevd.service || fail "systemd-udevd did not start"
t0=$(date +%s%N)
timeout 120 systemctl daemon-reload || fail "daemon-reload failed"
echo "daemon-reload (both generators): $(ms $t0) ms"
[ -L /run/systemd/generator/swap.target.wants/uzram@zram0.service ] ||
    fail "uzram-generator did not pull uzram@zram0 into swap.target at daemon-reload"
[ -e /run/systemd/generator/dev-zram0.swap ] || fail "zram-generator made no dev-zram0.swap"
modprobe zram || fail "modprobe zram failed"
timeout 60 udevadm trigger --settle --action=add /sys/block/zram0 || fail "udevadm trigger zram0 failed"
[ "$(systemctl show -P ActiveState dev-zram0.device)" = active ] || fail "systemd does not see dev-zram0.device"
timeout 60 systemctl start modprobe@ublk_drv.service
[ -e /dev/ublk-control ] || fail "the guest kernel has no ublk (modprobe ublk_drv)"

swap_of () { awk -v d="$1" '$1 == d { print $5 }' /proc/swaps; }

# --- the unit's start: ublk, swap at 100, nbdkit the main pid in its slice ---
t0=$(date +%s%N)
timeout 120 systemctl start uzram@zram0.service ||
    { systemctl status uzram@zram0.service --no-pager || :; fail "systemctl start uzram@zram0 failed"; }
echo "systemctl start uzram@zram0: $(ms $t0) ms"
systemctl status uzram@zram0.service --no-pager | head -n 12 || :
pid=$(systemctl show -P MainPID uzram@zram0.service)
[ "$pid" -gt 0 ] 2>/dev/null || fail "the unit has no main pid"
[ "$(cat /proc/$pid/comm)" = nbdkit ] || fail "the main pid $pid is $(cat /proc/$pid/comm), not nbdkit"
[ "$(cat /run/uzram/zram0/nbdkit.pid)" = "$pid" ] || fail "nbdkit's pid file is not the unit's main pid"
cg=$(sed -n 's/^0:://p' /proc/$pid/cgroup)
[ "$cg" = /uzram.slice/uzram@zram0.service ] || fail "nbdkit is in $cg, not uzram.slice/uzram@zram0.service"
dev=$(sed -n 's/^device=//p' /run/uzram/zram0/state)
case $dev in /dev/ublkb[0-9]*) ;; *) fail "the unit attached $dev, not /dev/ublkbN (ublk is the default where the kernel has it)" ;; esac
[ "$(swap_of "$dev")" = 100 ] || fail "$dev is not swap at priority 100: $(cat /proc/swaps)"
grep -q '\[lz4\]' /run/uzram/zram0/control/comp_algorithm || fail "compression-algorithm lz4 not applied"
# Pages swapped out land in nbdkit's memory, charged to the slice.
before=$(cat /sys/fs/cgroup/uzram.slice/memory.current)
# A scope of its own writes 160 MiB and has 120 MiB of it reclaimed
# (memory.reclaim): to swap, the only place anonymous pages can go.
cat > /tmp/reclaim.py <<'EOF'
import mmap, os
cg = "/sys/fs/cgroup" + open("/proc/self/cgroup").read().split("::")[1].strip()
# Half random, half zero: about 2 KiB compressed a page.
rnd = os.urandom(1 << 20)
m = mmap.mmap(-1, 160 << 20)
for i in range(0, len(m), 4096):
    o = (i >> 12) % 500 * 2048
    m[i:i + 2048] = rnd[o:o + 2048]
    m[i:i + 8] = (i + 1).to_bytes(8, "little")
try:
    open(cg + "/memory.reclaim", "w").write(str(120 << 20))
except OSError as e:   # EAGAIN: less than asked; memory.swap.current says
    print("memory.reclaim:", e)
print("swapped", open(cg + "/memory.swap.current").read().strip())
ok = all(m[i:i + 8] == (i + 1).to_bytes(8, "little") for i in range(0, len(m), 4096))
print("read back", "ok" if ok else "WRONG")
EOF
timeout 180 systemd-run --quiet --scope -p MemoryAccounting=yes python3 /tmp/reclaim.py > /tmp/reclaim.out 2>&1
cat /tmp/reclaim.out
grep -q "read back ok" /tmp/reclaim.out || fail "pages swapped to $dev did not read back"
swapped=$(sed -n 's/^swapped //p' /tmp/reclaim.out)
[ "${swapped:-0}" -gt $((32 << 20)) ] || fail "memory.reclaim put only ${swapped:-0} bytes in swap"
after=$(cat /sys/fs/cgroup/uzram.slice/memory.current)
echo "uzram.slice memory.current: $before before, $after after ${swapped} bytes went to swap"
[ "$after" -gt "$((before + (4 << 20)))" ] ||
    fail "uzram.slice was not charged for the swapped pages ($before then $after)"
[ "$(systemctl show -P MemoryCurrent uzram.slice)" -gt 0 ] || fail "systemd reports no MemoryCurrent for uzram.slice"

# --- stop: swap off before the server goes, then nothing left ---
dmesg -C
timeout 300 systemctl stop uzram@zram0.service || fail "systemctl stop uzram@zram0 failed"
[ -z "$(swap_of "$dev")" ] || fail "$dev still swap after stop"
pid_alive "$pid" && fail "nbdkit (pid $pid) still runs after stop"
[ -e /run/uzram/zram0 ] && fail "stop left /run/uzram/zram0"
[ -b "$dev" ] && fail "stop left $dev"
dmesg | grep -i "error.*ublkb\|ublkb.*error\|Read-error on swap" && fail "I/O errors on $dev: the server went before swapoff"
[ "$(systemctl show -P ActiveState uzram@zram0.service)" = inactive ] || fail "the unit is not inactive after stop"

# --- UZRAM_VIA=disk: a loop device over the control filesystem's disk ---
mkdir -p /run/systemd/system/uzram@zram0.service.d
printf '[Service]\nEnvironment=UZRAM_VIA=disk\n' > /run/systemd/system/uzram@zram0.service.d/via.conf
systemctl daemon-reload
timeout 120 systemctl start uzram@zram0.service || fail "systemctl start with UZRAM_VIA=disk failed"
dev=$(sed -n 's/^device=//p' /run/uzram/zram0/state)
case $dev in /dev/loop[0-9]*) ;; *) fail "UZRAM_VIA=disk attached $dev, not a loop device" ;; esac
[ "$(swap_of "$dev")" = 100 ] || fail "$dev is not swap at priority 100"
timeout 300 systemctl stop uzram@zram0.service || fail "systemctl stop (disk) failed"
losetup "$dev" 2>/dev/null | grep -q /run/uzram && fail "stop left $dev attached"
rm -r /run/systemd/system/uzram@zram0.service.d
systemctl daemon-reload

# --- start to swap on: uzram@zram0 (ublk) against dev-zram0.swap (zram) ---
zgstop () { timeout 120 systemctl stop dev-zram0.swap systemd-zram-setup@zram0.service; }
for (( r = 1; r <= reps; r++ )); do
    t0=$(date +%s%N)
    timeout 120 systemctl start uzram@zram0.service || fail "start uzram@zram0 (rep $r) failed"
    t=$(ms $t0)
    dev=$(sed -n 's/^device=//p' /run/uzram/zram0/state)
    [ "$(swap_of "$dev")" = 100 ] || fail "no swap on $dev after start (rep $r)"
    echo "FIGURE uzram@zram0 ($dev) rep $r: systemctl start to swap on $t ms"
    timeout 300 systemctl stop uzram@zram0.service || fail "stop uzram@zram0 (rep $r) failed"

    t0=$(date +%s%N)
    timeout 120 systemctl start dev-zram0.swap ||
        { systemctl status dev-zram0.swap systemd-zram-setup@zram0.service --no-pager || :; fail "start dev-zram0.swap (rep $r) failed"; }
    t=$(ms $t0)
    [ -n "$(swap_of /dev/zram0)" ] || fail "no swap on /dev/zram0 after start (rep $r)"
    grep -q '\[lz4\]' /sys/block/zram0/comp_algorithm || fail "zram0 is not lz4"
    echo "FIGURE dev-zram0.swap (kernel zram) rep $r: systemctl start to swap on $t ms"
    zgstop || fail "stop dev-zram0.swap (rep $r) failed"
done
echo OK
