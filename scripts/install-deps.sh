#!/bin/sh
# The one list of Debian 12 packages uzram needs to build, run, test and
# benchmark.  README's two commands both call this; nothing else installs.
set -e
PKGS="
  build-essential autoconf automake libtool pkg-config
  nbdkit nbdkit-plugin-dev libnbd-bin python3-libnbd
  liblzo2-dev liblz4-dev libzstd-dev zlib1g-dev zstd
  libfuse3-dev fuse3 liburing-dev
  fio qemu-utils nbd-client
  e2fsprogs util-linux procps
  clang libclang-rt-14-dev valgrind
  gnuplot-nox perl
"
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
