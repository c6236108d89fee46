#!/bin/bash
# The Debian package: dpkg-buildpackage builds uzram_*.deb from this
# source tree, dpkg installs it on this machine, and the installed parts
# work by their installed names: `nbdkit zram` finds the plugin without a
# path, `uzram` finds the plugin and the generator, the units verify, and
# the unit's commands bring a swap device up and down.  Where systemd is
# PID 1 (a guest) `systemctl start uzram@NAME` runs too.  Then the package
# is purged and nothing of it may be left.
#
# It installs into /usr: run it alone (the suite's lock), on a machine
# without another uzram package.  UZRAM_DEB names a package built
# already, to test that one: so that the whole test, `systemctl start`
# included, runs in a guest whose PID 1 is systemd, where building would
# take long under TCG (the path in the build folder, which the guest
# shares):
#   scripts/guest.sh --systemd --timeout 1200 -- \
#       env UZRAM_DEB=BUILD/uzram_VERSION_amd64.deb bash tests/test-deb.sh
source "$top_srcdir/tests/functions.sh"
need_tool dpkg-buildpackage dh dpkg nbdkit nbdinfo systemd-analyze losetup mkswap git
[ "$(id -u)" = 0 ] || fail "needs root (dpkg -i)"
[ -c /dev/fuse ] || skip_test "no /dev/fuse"
if dpkg-query -W -f='${Status}' uzram 2>/dev/null | grep -q installed; then
    fail "a uzram package is already installed here; this test would replace and purge it"
fi

# --- build, from the files git knows (tracked and new), not build folders ---
if [ -n "${UZRAM_DEB:-}" ]; then
    deb=$UZRAM_DEB
    [ -f "$deb" ] || fail "UZRAM_DEB=$deb is no file"
    # In a guest (its layer, not the host's files): man-db's trigger would
    # rebuild its index for minutes under TCG.
    if [ -n "${UZRAM_GUEST:-}" ]; then rm -f /var/lib/man-db/auto-update; fi
else
    mkdir -p "$tmpdir/deb/uzram"
    git -C "$top_srcdir" ls-files -co --exclude-standard -z |
        (cd "$top_srcdir" && tar --null -T - -cf -) | tar -C "$tmpdir/deb/uzram" -xf -
    echo "building the package (a few minutes) ..."
    (cd "$tmpdir/deb/uzram" &&
        DEB_BUILD_OPTIONS="nocheck noddebs parallel=$(nproc)" \
        timeout 1800 dpkg-buildpackage -b -us -uc) > "$tmpdir/build.log" 2>&1 ||
        { tail -n 40 "$tmpdir/build.log"; fail "dpkg-buildpackage failed"; }
    deb=$(ls "$tmpdir"/deb/uzram_*.deb)
    [ -f "$deb" ] || fail "no uzram_*.deb built"
fi
dpkg-deb -c "$deb"
plugindir=$(nbdkit --dump-config | sed -n 's/^plugindir=//p')
dpkg-deb -c "$deb" | grep -q " \./${plugindir#/}/nbdkit-zram-plugin.so$" ||
    fail "the package does not put the plugin in nbdkit's plugindir $plugindir"
dpkg-deb -c "$deb" | grep -q "nbdkit-zram-plugin.la$" && fail "the package ships libtool's .la"

# --- install (apt's lock: other work on this machine may be running apt) ---
cleanup_fn "flock /tmp/uzram-apt.lock timeout 300 dpkg --purge uzram >/dev/null 2>&1"
flock /tmp/uzram-apt.lock timeout 300 dpkg -i "$deb" || fail "dpkg -i failed"
dpkg-query -L uzram > "$tmpdir/files"

# Only installed paths from here on: no source tree, no build folder.
unset UZRAM_PLUGIN UZRAM_GENERATOR UZRAM_CONF_ROOT
export UZRAM_RUN=$tmpdir/run
cd /

# nbdkit finds the plugin by its name.
nbdkit zram --dump-plugin > "$tmpdir/dump" || fail "nbdkit zram --dump-plugin failed"
grep -q "^path=$plugindir/nbdkit-zram-plugin.so$" "$tmpdir/dump" || fail "nbdkit zram is not the installed plugin"
grep -q "^zram_comp_algorithms=lzo" "$tmpdir/dump" || fail "the installed plugin has no compressors"
[ "$(timeout 60 nbdkit -U - zram 64M --run 'nbdinfo --size "$uri"')" = 67108864 ] ||
    fail "nbdkit zram 64M does not serve 64 MiB"
man -w nbdkit-zram-plugin >/dev/null 2>&1 || [ ! -x /usr/bin/man ] || fail "man nbdkit-zram-plugin not found"
man -w 8 uzram >/dev/null 2>&1 || [ ! -x /usr/bin/man ] || fail "man 8 uzram not found"

# uzram, installed: the plugin and the generator by their installed paths.
[ "$(command -v uzram)" = /usr/sbin/uzram ] || fail "uzram is not /usr/sbin/uzram"
[ -z "$(uzram)" ] || fail "uzram lists devices that do not exist"
dev=$(timeout 60 uzram up --size 64M --name debtest) || fail "uzram up with the installed plugin failed"
cleanup_fn "timeout 60 /usr/sbin/uzram down debtest >/dev/null 2>&1"
tr '\0' ' ' < "/proc/$(cat "$UZRAM_RUN/debtest/nbdkit.pid")/cmdline" |
    grep -q "$plugindir/nbdkit-zram-plugin.so" || fail "uzram up did not use the installed plugin"
uzram -n -o NAME,DISKSIZE,DEVICE | grep -q "^debtest  *64M  *$dev$" || fail "uzram does not list debtest"
timeout 60 uzram down debtest || fail "uzram down failed"

# The units, where systemd looks for them.
for u in uzram@.service uzram.slice; do
    grep -qx "/lib/systemd/system/$u" "$tmpdir/files" || fail "$u not installed in /lib/systemd/system"
done
grep -qx /lib/systemd/system-generators/uzram-generator "$tmpdir/files" || fail "uzram-generator not installed"
timeout 60 systemd-analyze verify uzram@zram0.service uzram.slice > "$tmpdir/verify" 2>&1 ||
    { cat "$tmpdir/verify"; fail "systemd-analyze verify of the installed units failed"; }
grep -q uzram "$tmpdir/verify" && { cat "$tmpdir/verify"; fail "systemd-analyze verify complained"; }

# The installed generator and the installed unit's commands on a
# configuration of our own ($UZRAM_CONF_ROOT, so /etc stays untouched).
root=$tmpdir/root
mkdir -p "$root/proc" "$root/etc"
echo 'MemTotal:        8388608 kB' > "$root/proc/meminfo"
printf '[zram0]\nzram-size = ram / 64\ncompression-algorithm = lz4\n' > "$root/etc/uzram.conf"
UZRAM_CONF_ROOT=$root timeout 30 /lib/systemd/system-generators/uzram-generator "$tmpdir/gen" ||
    fail "the installed generator failed"
[ "$(readlink "$tmpdir/gen/swap.target.wants/uzram@zram0.service")" = /lib/systemd/system/uzram@.service ] ||
    fail "the generator's link does not point at the installed unit"
unit_cmd () { sed -n "s/^$1=-\{0,1\}//p" /lib/systemd/system/uzram@.service | sed "s/%i/$2/g"; }
export UZRAM_CONF_ROOT=$root
$(unit_cmd ExecStart zram0) > "$tmpdir/serve.log" 2>&1 &
main_pid=$!
cleanup_fn "kill $main_pid 2>/dev/null"
$(unit_cmd ExecStartPost zram0) || { cat "$tmpdir/serve.log"; fail "the installed unit's ExecStartPost failed"; }
dev=$(sed -n 's/^device=//p' "$UZRAM_RUN/zram0/state")
[ "$(awk -v d="$dev" '$1 == d { print $5 }' /proc/swaps)" = 100 ] || fail "no swap at priority 100 on $dev"
grep -q '\[lz4\]' "$UZRAM_RUN/zram0/control/comp_algorithm" || fail "compression-algorithm lz4 not applied"
$(unit_cmd ExecStop zram0) || fail "the installed unit's ExecStop failed"
grep -q "^$dev " /proc/swaps && fail "swap still on after ExecStop"
unset UZRAM_CONF_ROOT

# With systemd as PID 1: the real thing, from /etc/uzram.conf.
if [ -d /run/systemd/system ] && [ ! -e /etc/uzram.conf ]; then
    cleanup_fn "systemctl stop uzram@zram0.service 2>/dev/null; rm -f /etc/uzram.conf; systemctl daemon-reload"
    printf '[zram0]\nzram-size = 256\n' > /etc/uzram.conf
    systemctl daemon-reload
    [ -L /run/systemd/generator/swap.target.wants/uzram@zram0.service ] || fail "the generator did not run at daemon-reload"
    t0=$(date +%s%N)
    timeout 120 systemctl start uzram@zram0.service || { systemctl status uzram@zram0.service; fail "systemctl start uzram@zram0 failed"; }
    echo "systemctl start uzram@zram0 to swap on: $(( ($(date +%s%N) - t0) / 1000000 )) ms"
    pid=$(systemctl show -P MainPID uzram@zram0.service)
    [ "$(cat /proc/$pid/comm)" = nbdkit ] || fail "the unit's main pid is not nbdkit"
    grep -q "uzram.slice/uzram@zram0.service" "/proc/$pid/cgroup" || fail "nbdkit is not in uzram.slice"
    dev=$(sed -n 's/^device=//p' /run/uzram/zram0/state)
    [ "$(awk -v d="$dev" '$1 == d { print $5 }' /proc/swaps)" = 100 ] ||
        { cat /proc/swaps; fail "$dev is not swap at priority 100 after systemctl start"; }
    timeout 300 systemctl stop uzram@zram0.service || fail "systemctl stop failed"
    [ -e /run/uzram/zram0 ] && fail "systemctl stop left /run/uzram/zram0"
    rm -f /etc/uzram.conf
    systemctl daemon-reload
else
    echo "systemd is not PID 1 here: systemctl start not tried"
fi

# --- remove: nothing of the package may be left ---
flock /tmp/uzram-apt.lock timeout 300 dpkg --purge uzram || fail "dpkg --purge failed"
left=
while read -r f; do
    # Directories (and /lib, a link to one where /usr is merged) are shared.
    [ -d "$f" ] && continue
    [ -e "$f" ] || [ -L "$f" ] && left="$left $f"
done < "$tmpdir/files"
[ -z "$left" ] || fail "dpkg --purge left:$left"
nbdkit zram --dump-plugin >/dev/null 2>&1 && fail "nbdkit still finds a zram plugin after purge"
echo OK
