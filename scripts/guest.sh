#!/bin/bash
# guest.sh: run one command as root in a guest on Debian's own kernel.
#
#   scripts/guest.sh [--mem SIZE] [--cpus N] [--timeout SECS] [--build DIR]
#                    [--systemd] -- COMMAND [ARGS...]
#   scripts/guest.sh --prepare [--build DIR]   # fetch and unpack only
#
# The kernel this project's machines run has no nbd and no ublk module,
# and its zram is not the one most users have.  Debian 12's 6.12 kernel
# has all three, and qemu runs it here.  The guest sees the host's root
# read-only under a writable layer kept in the guest's RAM, so the host's
# programs and this checkout are at the same paths; the build folder is
# shared read-write, so what a command writes there (logs, test output)
# stays on the host.  /tmp and /run are the guest's own tmpfs.  /proc,
# /sys, /dev, cgroup2 and debugfs are mounted, and `modprobe` loads the
# package's modules.  COMMAND runs as root with this shell's environment
# and working directory, stdin from /dev/null; its stdout and stderr come
# back as they are written, and its exit status is guest.sh's.
#
# With --systemd the host's systemd is the guest's PID 1, on the same
# root: it starts uzram-guest.target, which holds only the service that
# runs COMMAND (no getty, no journal, no udev unless COMMAND starts them),
# so that COMMAND can start and stop units as on a booted machine.  The
# units go into the guest's /etc/systemd/system (the RAM layer), never
# the host's.
#
# The kernel package is fetched with `apt-get download` (never installed),
# and the unpacked kernel, modules and initramfs are kept under
# BUILD/guest (BUILD: --build, else $top_builddir, else build/ in this
# checkout).  UZRAM_GUEST_DEB_DIR names a folder to copy the package
# from instead of downloading it.  UZRAM_GUEST_ACCEL=kvm|tcg skips the
# accelerator probe: this machine's KVM may be unable to run a stock kernel
# (a nested "PVM" KVM stops at its first VEX instruction), so KVM is used
# only where a quick boot under it works, TCG otherwise.
#
# Exit status: COMMAND's; 124 when --timeout (default 600 s) ran out;
# 125 when qemu cannot boot a guest here at all (the reason on stderr;
# a kernel package that cannot be fetched is a plain failure, 1);
# 126 when the guest died before COMMAND ended (a panic, say).  On any
# failure (or with UZRAM_GUEST_KEEP=1) the guest's console log and dmesg are
# kept and their path printed.  A command that fails in a guest whose
# kernel took a debug trap nothing had set (the emulated CPU's fault) runs
# once more in a new guest, and says so.  UZRAM_GUEST_MONITOR=PATH gives
# qemu's human monitor on Unix socket PATH, for one who must see into a guest
# that can no longer run a program: `sendkey alt-sysrq-w` there has the
# guest's kernel print its blocked tasks to the console log (with
# kernel.sysrq set to allow it).
set -u
export PATH=/usr/sbin:/usr/bin:/sbin:/bin:$PATH
export LC_ALL=C

prog=guest.sh
src=$(cd "$(dirname "$(readlink -f "$0")")/.." && pwd)
args=("$@")
mem=1G cpus=2 tmo=600 build= prepare_only=0 systemd=0
die () { echo "$prog: $*" >&2; exit "${rc_die:-1}"; }

while [ $# -gt 0 ]; do
    case $1 in
    --mem) mem=${2:?--mem needs a size}; shift ;;
    --cpus) cpus=${2:?--cpus needs a number}; shift ;;
    --timeout) tmo=${2:?--timeout needs seconds}; shift ;;
    --build) build=${2:?--build needs a folder}; shift ;;
    --prepare) prepare_only=1 ;;
    --systemd) systemd=1 ;;
    --) shift; break ;;
    -h|--help) sed -n '2,6s/^# \{0,1\}//p' "$0"; exit 0 ;;
    *) die "unknown option '$1' (the command goes after --)" ;;
    esac
    shift
done
[ $prepare_only = 1 ] || [ $# -gt 0 ] || die "no command (scripts/guest.sh [options] -- COMMAND [ARGS...])"
[[ $tmo =~ ^[0-9]+$ ]] && [ "$tmo" -gt 0 ] || die "--timeout must be a number of seconds"
[[ $cpus =~ ^[0-9]+$ ]] && [ "$cpus" -gt 0 ] || die "--cpus must be a number"
[ "$(id -u)" = 0 ] || die "needs root (qemu shares / with the guest, which runs as root)"
for t in qemu-system-x86_64 busybox cpio xz zstd depmod modprobe apt-get dpkg-deb; do
    command -v $t >/dev/null 2>&1 ||
        die "'$t' is missing: run scripts/install-deps.sh"
done
build=${build:-${top_builddir:-$src/build}}
mkdir -p "$build" || die "cannot create $build"
build=$(cd "$build" && pwd)
cache=$build/guest
mkdir -p "$cache"

# --- the kernel package, unpacked and prepared once ---
# Under $cache: deb/ the package; root/ its /boot and /lib/modules with
# modules.dep; kver; initramfs-KVER.cpio with busybox and the modules the
# first stage needs; accel, the accelerator the probe found working.

# The first stage, in the initramfs (busybox: its programs start fast,
# where each of the host's costs a round of 9p reads).  It mounts the
# host's root over 9p with a tmpfs layer over it, builds the rest of the
# guest's file systems there, and hands over to scripts/guest-init.sh,
# which runs the command.  The run folder (9p tag uzramctl) holds `config`,
# which names the build folder and where the modules are.  With
# uzram_probe=1 it only says it is alive, to test an accelerator.
stage1='#!/bin/sh
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
for m in $(cat /modules.list); do insmod "$m" || echo "guest: insmod $m failed" > /dev/console; done
uzram_init=
uzram_probe=
uzram_systemd=
for a in $(cat /proc/cmdline); do
    case $a in uzram_init=*|uzram_probe=*|uzram_systemd=*) eval "$a" ;; esac
done
fail () {
    echo "guest: $*" > /dev/console
    echo o > /proc/sysrq-trigger
    sleep 60
}
[ -z "$uzram_probe" ] || fail "uzram-guest: alive"
p9="trans=virtio,version=9p2000.L,msize=512000"
r=/newroot
mkdir -p /lower /layer $r
mount -t 9p -o $p9,ro,cache=loose hostroot /lower &&
mount -t tmpfs -o mode=0755 layer /layer &&
mkdir -p /layer/upper /layer/work &&
mount -t overlay -o lowerdir=/lower,upperdir=/layer/upper,workdir=/layer/work overlay $r ||
    fail "cannot mount the host root"
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs $r/tmp &&
mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs $r/run &&
mkdir -p $r/run/uzram-guest &&
mount -t 9p -o $p9 uzramctl $r/run/uzram-guest &&
. $r/run/uzram-guest/config || fail "cannot mount the run folder"
# A checkout under /tmp or /run (a CI clone, say) is hidden by the
# tmpfs of the guest there: show the copy of the host at the same path.
case $guest_src in
/tmp/*|/run/*)
    mkdir -p "$r$guest_src" && mount --bind "/lower$guest_src" "$r$guest_src" ||
        fail "cannot show $guest_src" ;;
esac
# cache=mmap: the plugin and the test programs there are mapped.
mkdir -p "$r$guest_build" &&
mount -t 9p -o $p9,cache=mmap build "$r$guest_build" || fail "cannot mount $guest_build"
mkdir -p "$r/lib/modules/$guest_kver" &&
mount --bind "$r$guest_modules/$guest_kver" "$r/lib/modules/$guest_kver" ||
    fail "cannot bind the modules at /lib/modules/$guest_kver"
echo uzram-guest > /proc/sys/kernel/hostname
ip link set lo up
stty -F /dev/hvc0 raw -echo
stty -F /dev/hvc1 raw -echo
mount --move /dev $r/dev
mount --move /proc $r/proc
mount --move /sys $r/sys
mkdir -p $r/dev/pts $r/dev/shm
mount -t devpts -o gid=5,mode=620,ptmxmode=000 devpts $r/dev/pts
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs $r/dev/shm
mount -t cgroup2 -o nsdelegate cgroup2 $r/sys/fs/cgroup
mount -t debugfs debugfs $r/sys/kernel/debug
[ -n "$uzram_systemd" ] || exec switch_root $r /bin/bash "$uzram_init"
# systemd as PID 1: the kernel command line names uzram-guest.target, which
# pulls in only the command, with no dependency on sysinit.target (each
# unit more costs seconds under TCG).  Its output goes to the consoles the
# second stage opens; the unit itself writes to the console log.
u=$r/etc/systemd/system
mkdir -p $u || fail "cannot write $u"
printf "%s\n" "[Unit]" "Description=uzram guest: the command" \
    "Wants=uzram-guest.service" "AllowIsolate=yes" > $u/uzram-guest.target
printf "%s\n" "[Unit]" "Description=uzram guest: the command" "DefaultDependencies=no" \
    "[Service]" "Type=exec" "ExecStart=/bin/bash $uzram_init" \
    "StandardInput=null" "StandardOutput=tty" "TTYPath=/dev/console" > $u/uzram-guest.service
# The host may be a container: its marker would make systemd act as one
# (and read its own argv for the kernel command line).  Hidden in the layer.
rm -f $r/.dockerenv $r/run/.containerenv
exec switch_root $r /lib/systemd/systemd --unit=uzram-guest.target --show-status=0
'

# prepare: runs under $cache/lock, so that parallel runs share one copy.
prepare ()
{
    local kver pkg deb
    kver=$(cat "$cache/kver" 2>/dev/null)
    if [ -z "$kver" ] || [ ! -f "$cache/root/boot/vmlinuz-$kver" ] ||
           [ ! -f "$cache/root/lib/modules/$kver/modules.dep" ]; then
        mkdir -p "$cache/deb"
        deb=$(ls "$cache"/deb/linux-image-6.12.*_amd64.deb 2>/dev/null | sort -V | tail -n 1)
        if [ -z "$deb" ] && [ -n "${UZRAM_GUEST_DEB_DIR:-}" ]; then
            deb=$(ls "$UZRAM_GUEST_DEB_DIR"/linux-image-6.12.*_amd64.deb 2>/dev/null | sort -V | tail -n 1)
            if [ -n "$deb" ]; then
                cp "$deb" "$cache/deb/" || return 1
                deb=$cache/deb/${deb##*/}
            fi
        fi
        if [ -z "$deb" ]; then
            # The unversioned package only depends on the current image.
            pkg=$(apt-cache depends linux-image-6.12-amd64 2>/dev/null |
                      sed -n 's/^ *Depends: \(linux-image-6\.12\..*-amd64\)$/\1/p' | head -n 1)
            if [ -z "$pkg" ]; then
                apt-get update -qq >&2 || :
                pkg=$(apt-cache depends linux-image-6.12-amd64 2>/dev/null |
                          sed -n 's/^ *Depends: \(linux-image-6\.12\..*-amd64\)$/\1/p' | head -n 1)
            fi
            [ -n "$pkg" ] || { echo "$prog: apt knows no linux-image-6.12-amd64 (Debian 12's bookworm-security or backports)" >&2; return 1; }
            echo "$prog: downloading $pkg (about 110 MB, once per build folder)" >&2
            (cd "$cache/deb" && apt-get download -q "$pkg" >&2 2>&1) ||
                { echo "$prog: apt-get download $pkg failed" >&2; return 1; }
            deb=$(ls "$cache"/deb/linux-image-6.12.*_amd64.deb | sort -V | tail -n 1)
        fi
        echo "$prog: unpacking ${deb##*/}" >&2
        rm -rf "$cache/root" "$cache/kver" "$cache"/initramfs-*
        mkdir -p "$cache/root"
        dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$cache/root" ./boot ./lib/modules ||
            { echo "$prog: cannot unpack $deb" >&2; return 1; }
        kver=$(ls "$cache/root/lib/modules" | head -n 1)
        [ -f "$cache/root/boot/vmlinuz-$kver" ] || { echo "$prog: no vmlinuz-$kver in $deb" >&2; return 1; }
        # qemu boots the uncompressed kernel through its PVH entry, which
        # saves the firmware's loader and the decompression, seconds under TCG.
        local off; off=$(grep -obUaP '\x28\xb5\x2f\xfd' "$cache/root/boot/vmlinuz-$kver" | head -n 1 | cut -d: -f1)
        [ -n "$off" ] && tail -c +$((off + 1)) "$cache/root/boot/vmlinuz-$kver" |
            zstd -dcq 2>/dev/null > "$cache/root/boot/vmlinux-$kver"
        file -b "$cache/root/boot/vmlinux-$kver" 2>/dev/null | grep -q '^ELF 64-bit' ||
            rm -f "$cache/root/boot/vmlinux-$kver"
        # The package has no modules.dep: dpkg's postinst makes it.
        depmod -b "$cache/root" "$kver" || { echo "$prog: depmod failed" >&2; return 1; }
        echo "$kver" > "$cache/kver"
    fi

    # The initramfs is rebuilt whenever this script changes.
    local stamp; stamp=$(md5sum < "$0" | cut -c1-12)
    initrd=$cache/initramfs-$kver-$stamp.cpio
    if [ ! -f "$initrd" ]; then
        local d; d=$(mktemp -d "$cache/initramfs.XXXXXX")
        mkdir -p "$d/bin" "$d/proc" "$d/sys" "$d/dev" "$d/mods"
        cp "$(command -v busybox)" "$d/bin/busybox"
        local a
        for a in sh mount umount mkdir insmod cat echo sleep switch_root ip stty; do
            ln -s busybox "$d/bin/$a"
        done
        # 9p and overlayfs, with what they depend on, in load order, and loop,
        # which has no device node to load it on demand without udev;
        # busybox's insmod takes only uncompressed modules.
        local m n=0
        : > "$d/modules.list"
        for m in $(modprobe -d "$cache/root" -S "$kver" --show-depends -a 9pnet_virtio 9p overlay loop |
                       awk '$1 == "insmod" && !seen[$2]++ { print $2 }'); do
            n=$((n + 1))
            case $m in
            *.xz) xz -dc "$m" > "$d/mods/$n.ko" ;;
            *.zst) zstd -dc "$m" > "$d/mods/$n.ko" ;;
            *) cp "$m" "$d/mods/$n.ko" ;;
            esac || { rm -rf "$d"; return 1; }
            echo "/mods/$n.ko" >> "$d/modules.list"
        done
        printf '%s' "$stage1" > "$d/init"
        chmod 755 "$d/init"
        (cd "$d" && find . | cpio -o -H newc --quiet) > "$initrd.tmp" && mv "$initrd.tmp" "$initrd" ||
            { rm -rf "$d"; return 1; }
        rm -rf "$d"
    fi
    vmlinuz=$cache/root/boot/vmlinux-$kver
    [ -f "$vmlinuz" ] || vmlinuz=$cache/root/boot/vmlinuz-$kver
}

exec 9> "$cache/lock"
flock 9
prepare || die "cannot prepare the guest's kernel (see above)"
flock -u 9
[ $prepare_only = 1 ] && { echo "$vmlinuz"; exit 0; }

# --- one qemu run ---
qemu_pid=
run=
cleanup ()
{
    [ -n "$qemu_pid" ] && kill -KILL "$qemu_pid" 2>/dev/null
    [ -n "$run" ] && [ -z "${keep_run:-}" ] && rm -rf "$run"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

# no_timer_check: under TCG on a busy host the kernel's check that the
# IO-APIC timer ticks can time out and panic the boot.
# boot ACCEL CMDLINE-EXTRA [OUT ERR]: starts qemu in the background (sets
# $qemu_pid) with its console in $run/console.log and the first two virtio
# consoles (the command's stdout and stderr) going to files OUT and ERR
# (default: discarded).
boot ()
{
    local accel=$1 extra=$2 acc out err
    [ $systemd = 1 ] && [ -z "$extra" ] && extra=uzram_systemd=1
    case $accel in
    kvm) acc=(-accel kvm) ;;
    *) acc=(-accel tcg,thread=multi) ;;
    esac
    if [ $# -ge 4 ]; then
        out=(-chardev "file,id=out,path=$3"); err=(-chardev "file,id=err,path=$4")
    else
        out=(-chardev null,id=out); err=(-chardev null,id=err)
    fi
    qemu-system-x86_64 "${acc[@]}" -cpu max -smp "$cpus" -m "$mem" \
        -nodefaults -no-user-config -display none -no-reboot \
        -kernel "$vmlinuz" -initrd "$initrd" \
        -append "console=ttyS0 quiet panic=-1 no_timer_check uzram_init=$src/scripts/guest-init.sh $extra" \
        -chardev file,id=con,path="$run/console.log" -serial chardev:con \
        -device virtio-serial-pci \
        "${out[@]}" -device virtconsole,chardev=out \
        "${err[@]}" -device virtconsole,chardev=err \
        -virtfs local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap \
        -virtfs local,path="$build",mount_tag=build,security_model=none,multidevs=remap \
        -virtfs local,path="$run",mount_tag=uzramctl,security_model=none,multidevs=remap \
        ${UZRAM_GUEST_MONITOR:+-monitor unix:$UZRAM_GUEST_MONITOR,server,nowait} \
        < /dev/null 2> "$run/qemu.log" &
    qemu_pid=$!
}

# probe ACCEL: does a guest under ACCEL reach its init?
probe ()
{
    local accel=$1 limit=$2 t
    : > "$run/console.log"
    boot "$accel" uzram_probe=1
    for (( t = 0; t < limit * 10; t++ )); do
        grep -q 'uzram-guest: alive' "$run/console.log" 2>/dev/null && break
        grep -q 'KVM internal error' "$run/qemu.log" 2>/dev/null && break
        kill -0 "$qemu_pid" 2>/dev/null || break
        sleep 0.1
    done
    grep -q 'uzram-guest: alive' "$run/console.log" 2>/dev/null && t=0 || t=1
    kill -KILL "$qemu_pid" 2>/dev/null; wait "$qemu_pid" 2>/dev/null; qemu_pid=
    return $t
}

run=$(mktemp -d "$cache/run.XXXXXX") || die "cannot make a run folder in $cache"
accel=${UZRAM_GUEST_ACCEL:-}
if [ -z "$accel" ]; then
    # The probe's answer holds for this host kernel and this qemu.
    key="$(uname -r) $(qemu-system-x86_64 --version | head -n 1) $(cat "$cache/kver")"
    accel=$(grep -F "$key=" "$cache/accel" 2>/dev/null | tail -n 1 | sed 's/.*=//')
    if [ -z "$accel" ]; then
        if [ -w /dev/kvm ] && probe kvm 30; then
            accel=kvm
        # Under multi-threaded TCG a boot now and then dies of an int3
        # left by the kernel's own code patching (an Oops in its first
        # seconds): such a boot is tried again before TCG is called unusable.
        elif probe tcg 180 || probe tcg 180 || probe tcg 180; then
            accel=tcg
        else
            keep_run=1
            echo "$prog: qemu cannot boot a guest here; qemu said:" >&2
            sed 's/^/  /' "$run/qemu.log" >&2
            rc_die=125 die "(console log in $run)"
        fi
        echo "$key=$accel" >> "$cache/accel"
    fi
fi
case $accel in kvm|tcg) ;; *) die "UZRAM_GUEST_ACCEL must be kvm or tcg" ;; esac

# What the guest runs: this shell's environment and folder, then COMMAND.
# make's jobserver descriptors do not cross into the guest.
{
    printf 'cd %q || exit 125\n' "$PWD"
    for v in $(compgen -e); do
        case $v in
        MAKEFLAGS|MFLAGS|MAKELEVEL|SHLVL|PWD|OLDPWD|_|TERM|DISPLAY|SSH_*|XDG_*|DBUS_*) continue ;;
        esac
        printf 'export %s=%q\n' "$v" "${!v}"
    done
    echo 'export UZRAM_GUEST=1'
    printf 'exec'
    printf ' %q' "$@"
    echo
} > "$run/cmd"
{
    printf 'guest_build=%q\n' "$build"
    printf 'guest_src=%q\n' "$src"
    printf 'guest_kver=%q\n' "$(cat "$cache/kver")"
    printf 'guest_modules=%q\n' "$cache/root/lib/modules"
    printf 'guest_timeout=%q\n' "$tmo"
} > "$run/config"

# The command's output reaches ours through fifos and cat, which write
# where guest.sh's own output goes (qemu opening /dev/stdout itself would
# not share the file's offset with this shell).
# A guest that dies before its init starts the command (no `booted`: the
# boot's early Oops under TCG, as above) is booted again, up to three
# times in all; COMMAND never runs twice.
attempt=0
while :; do
    attempt=$((attempt + 1))
    rm -f "$run/stdout" "$run/stderr"
    mkfifo "$run/stdout" "$run/stderr" || die "mkfifo in $run failed"
    cat "$run/stdout" &
    cat_out=$!
    cat "$run/stderr" >&2 &
    cat_err=$!
    start=$(date +%s.%N)
    : > "$run/console.log"
    boot "$accel" "" "$run/stdout" "$run/stderr"
    # The guest stops COMMAND at --timeout itself, dumps its blocked tasks
    # and powers off; this bound is for a guest that no longer runs at all.
    limit=$(( tmo + 120 ))
    waited=0
    while kill -0 "$qemu_pid" 2>/dev/null && [ $waited -lt $(( limit * 5 )) ]; do
        sleep 0.2
        waited=$((waited + 1))
    done
    timed_out=0
    if kill -0 "$qemu_pid" 2>/dev/null; then
        timed_out=1
        kill -KILL "$qemu_pid"
    fi
    wait "$qemu_pid" 2>/dev/null
    qemu_pid=
    end=$(date +%s.%N)
    # qemu's end closed the fifos: the cats have the rest to write.  A qemu
    # that never opened them leaves a cat waiting in open(): this open
    # (with a writer that closes at once) ends its wait.
    { :; } 3<> "$run/stdout" 4<> "$run/stderr"
    wait $cat_out $cat_err 2>/dev/null
    [ $timed_out = 0 ] && [ ! -e "$run/booted" ] && [ ! -e "$run/status" ] &&
        [ $attempt -lt 3 ] || break
    echo "$prog: the guest died before its init ran the command (attempt $attempt); booting again" >&2
    tail -n 5 "$run/console.log" | sed 's/^/  console: /' >&2
done

status=$(cat "$run/status" 2>/dev/null)
summary=$(awk -v s="$start" -v e="$end" -v a="$accel" \
              -v b="$(cat "$run/booted" 2>/dev/null)" -v c="$(cat "$run/ran" 2>/dev/null)" 'BEGIN {
    printf "%s, %.1f s in all", a, e - s
    if (b != "") printf ", up in %.1f s", b
    if (c != "") printf ", command %.1f s", c }')
if [ $timed_out = 1 ]; then
    rc=124
    echo "$prog: the guest did not stop within $limit s: killed" >&2
elif [ -z "$status" ]; then
    rc=126
    echo "$prog: the guest stopped before the command ended (panic? see the console log)" >&2
    tail -n 20 "$run/console.log" | sed 's/^/  console: /' >&2
else
    rc=$status
    [ "$rc" = 124 ] && echo "$prog: the command ran out of its $tmo s; blocked tasks are in the console log" >&2
fi
echo "$prog: $summary, exit $rc" >&2
if [ "$rc" != 0 ] && [ "$rc" != 77 ] || [ -n "${UZRAM_GUEST_KEEP:-}" ]; then
    keep_run=1
    echo "$prog: console log, dmesg and qemu's messages kept in $run" >&2
fi
# A debug trap in the guest's kernel that nothing set (the kernel warns
# in exc_debug_kernel) is the emulated CPU's fault, not the command's:
# seen once under TCG in about 40 runs of test-guest-pressure, with
# reserved bits set in EFLAGS and then the workload killed by a general
# protection fault on an AVX load.  The command then runs once more, in
# a new guest, and that run's status is guest.sh's.  Only once.
if [ "$rc" != 0 ] && [ -z "${UZRAM_GUEST_RERUN:-}" ] &&
   grep -q 'at arch/x86/kernel/traps.c:[0-9]* exc_debug_kernel' "$run/console.log"; then
    echo "$prog: the guest's kernel took a debug trap that nothing had set (exc_debug_kernel: the emulated CPU's fault, not the command's); running the command once more in a new guest" >&2
    trap - EXIT
    UZRAM_GUEST_RERUN=1 exec "$0" "${args[@]}"
fi
exit "$rc"
