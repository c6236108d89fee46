#!/bin/sh
# The one list of Debian 12 packages uzram needs to build, run, test and
# benchmark.  README's two commands both call this; nothing else installs.
#   scripts/install-deps.sh [--build | --run]
# --build: only what building needs (scripts/build.sh); --run: that and
# what `uzram up` runs (scripts/up.sh); neither: also the tools the tests
# and benchmarks drive (scripts/test.sh).
# apt-get runs only when a package is missing.
set -e
BUILD_PKGS="
  build-essential autoconf automake libtool pkg-config
  nbdkit nbdkit-plugin-dev
  liblzo2-dev liblz4-dev libzstd-dev zlib1g-dev
  libfuse3-dev liburing-dev
"
RUN_PKGS="
  fuse3 e2fsprogs util-linux procps
"
TEST_PKGS="
  libnbd-bin python3-libnbd zstd
  fio qemu-utils nbd-client
  clang libclang-rt-14-dev valgrind
  gnuplot-nox perl openssl
  debhelper
  qemu-system-x86 busybox-static cpio xz-utils zstd kmod file
  udev systemd-zram-generator
"
case "${1:-}" in
--build) PKGS=$BUILD_PKGS ;;
--run)   PKGS="$BUILD_PKGS $RUN_PKGS" ;;
*)       PKGS="$BUILD_PKGS $RUN_PKGS $TEST_PKGS" ;;
esac
missing=""
for p in $PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' ||
		missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" != 0 ]; then
	echo "install-deps: missing packages:$missing (run as root, or apt-get install them)" >&2
	exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends $missing
