#!/bin/bash
# guest-init.sh: PID 1 of a scripts/guest.sh guest, its second stage.
#
# The initramfs (guest.sh's first stage) has made the host's root, under a
# tmpfs layer, a working system: /proc, /sys, /dev, cgroup2, debugfs,
# /tmp, /run, the build folder and the run folder (/run/uzram-guest,
# shared with the host).  This runs the command guest.sh wrote there as
# `cmd` and gives back its exit status as `status`, with `booted` and
# `ran` (seconds) and the guest's `dmesg`; then the guest powers off.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
export LC_ALL=C
ctl=/run/uzram-guest
. "$ctl/config"

# Booted quietly; from here on the console log gets every kernel message
# (a hung task's stack, say), in case the guest dies before its dmesg is
# saved.
echo 7 > /proc/sys/kernel/printk
read -r booted _ < /proc/uptime
echo "$booted" > "$ctl/booted"
# The guest's own bound, inside the host's: when it runs out, the blocked
# tasks go to the console log for whoever reads why it hung.  stdout and
# stderr are the first two virtio consoles.
timeout -k 10 "$guest_timeout" bash "$ctl/cmd" < /dev/null > /dev/hvc0 2> /dev/hvc1
rc=$?
read -r done _ < /proc/uptime
if [ $rc = 124 ] || [ $rc = 137 ]; then
    echo "guest-init: the command ran out of its $guest_timeout s; blocked tasks:" > /dev/console
    echo w > /proc/sysrq-trigger
    rc=124
fi
echo "$done $booted" | awk '{ printf "%.2f\n", $1 - $2 }' > "$ctl/ran"
dmesg > "$ctl/dmesg" 2>/dev/null
echo "$rc" > "$ctl/status"
sync
echo o > /proc/sysrq-trigger
sleep 60 2>/dev/null
