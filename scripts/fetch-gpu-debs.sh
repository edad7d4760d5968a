#!/usr/bin/env bash
# Downloads (does not install) the Debian 12 .deb files that build and run hetrain on a machine
# that has none of its Debian packages: Open MPI, HDF5, fmt, CLI11, nlohmann-json, GoogleTest and
# the Fashion-MNIST dataset, with the runtime libraries they pull in. bench/gpu-check.sh --debs DIR
# unpacks them into a prefix there. Run it on a Debian 12 (bookworm, amd64) machine with network;
# root is not needed (apt-get update is run only when a download fails and we are root).
#   scripts/fetch-gpu-debs.sh [DIR]      DIR defaults to third_party/debs (ignored by git)
# DIR ends up holding exactly the .deb files and a MANIFEST (`sha256sum -c MANIFEST` checks them).
set -euo pipefail
cd "$(dirname "$0")/.."

dir=${1:-third_party/debs}   # where the .deb files and MANIFEST go
# The packages must be Debian 12's: gpu-check.sh relies on their paths and their glibc (2.36).
system="$(sed -n 's/^VERSION_CODENAME=//p' /etc/os-release) $(dpkg --print-architecture)"  # e.g. "bookworm amd64"
if [ "$system" != "bookworm amd64" ]; then
  echo "fetch-gpu-debs: needs Debian 12 (bookworm) on amd64; this is '$system'" >&2
  exit 1
fi

# What hetrain needs; the packages they depend on are added below, recursively.
roots=(
  openmpi-bin libopenmpi-dev libopenmpi3 openmpi-common   # MPI: mpirun, mpi.h, libmpi
  libhdf5-dev libhdf5-103-1 libhdf5-hl-100                # datasets and checkpoints
  libfmt-dev libcli11-dev nlohmann-json3-dev zlib1g-dev    # headers/libraries the build finds
  libminizip-dev libminizip1                              # --model FILE.pt: the archive check
  libgtest-dev googletest                                  # the tests
  dataset-fashion-mnist                                    # IDX files for scripts/prepare-data.sh
)

# Packages left out, and not followed into. The closure of the roots is what apt would install
# on an empty system; these are what the target machine already has, or what hetrain never uses.
# Every ELF file in what is kept finds its libraries in what is kept or in the base system below
# (checked in a chroot holding only that base); bench/gpu-check.sh checks again with ldd.
exclude=(
  # the base system: the C/C++ runtime that any machine with a C++ compiler has
  libc6 libc6-dev libc-dev-bin linux-libc-dev libcrypt1 libcrypt-dev 'libnsl.*' 'libtirpc.*'
  rpcsvc-proto libgcc-s1 'gcc-[0-9]+-base' 'libstdc\+\+6' 'libstdc\+\+-[0-9]+-dev' libatomic1 zlib1g
  # GnuTLS and what it needs: apt itself links it, so every Debian/Ubuntu has them (here they
  # come only through libldap, which libcurl links; ~3 MiB). Not libunistring2: Ubuntu 24.04
  # has only libunistring.so.5, and libpsl5 here needs .so.2.
  libgnutls30 libgmp10 libhogweed6 libnettle8 libp11-kit0 libtasn1-6 libffi8 libidn2-0
  # SASL's Berkeley DB plugin (sasldb logins; needs libdb5.3): LDAP through libcurl never uses it
  libsasl2-modules-db
  # Debian's packaging and admin tools (maintainer scripts; not run by dpkg-deb -x)
  debconf cdebconf 'debconf-.*' dpkg debianutils install-info adduser passwd tar 'perl.*'
  'libperl.*' 'libpam.*' libselinux1 'libsemanage.*' libsepol2 'libaudit.*' libcap-ng0 libacl1
  libdebian-installer4 libnewt0.52 libslang2 libtextwrap1 readline-common libreadline8 libtinfo6
  libdb5.3 'libgdbm.*' libmd0 libbsd0 libpcre2-8-0 libbz2-1.0 liblzma5
  # compilers and build tools: the target has its own C++ compiler, CMake and nvcc
  'gcc(-[0-9]+)?' 'g\+\+(-[0-9]+)?' 'cpp(-[0-9]+)?' 'binutils.*' libbinutils 'libctf.*' libgprofng0
  'lib(a|l|t|ub)san[0-9]*' libitm1 libgomp1 libquadmath0 libcc1-0 libisl23 libmpc3 libmpfr6
  'libgcc-[0-9]+-dev' autoconf automake autotools-dev m4 'libltdl.*'
  # Fortran (hetrain is C++; mpif90 and HDF5's Fortran bindings are not used)
  'gfortran.*' 'libgfortran.*' 'flang.*' 'libflang.*' 'libllvm.*' 'libclang.*' 'libmlir.*'
  libz3-4 libedit2 libhdf5-fortran-102 libhdf5-hl-fortran-100
  # HDF5's C++ bindings and helper tools (hetrain uses the C API)
  libhdf5-cpp-103-1 libhdf5-hl-cpp-100 hdf5-helpers
  # -dev packages that mpi.h and hdf5.h do not include (only the .so links/headers of the roots)
  libaec-dev 'libcurl.*-dev' libevent-dev libhwloc-dev libibverbs-dev 'libjpeg.*' 'libnl-.*-dev'
  libnuma-dev libpmix-dev libssl-dev 'libjs-.*'
  # libcurl-dev's alternatives, if apt lists them (libcurl4, the OpenSSL one, is kept)
  'libcurl3-.*' libnss3 libnspr4 nss-plugin-pem
  # hwloc's optional plugins (X11/NVCtrl, OpenCL, libxml2 + ICU, ~15 MiB): hwloc works without
  libhwloc-plugins
  # mpirun starts local ranks itself; ssh is only for other hosts
  openssh-client
)
exclude_re="^($(IFS='|'; echo "${exclude[*]}"))\$"

# Breadth-first walk over Depends/Pre-Depends, first alternative of each "a | b" group, not
# entering excluded packages (their own dependencies are not needed then).
deps_of() {  # prints the direct dependencies of package $1, one a line
  apt-cache depends --no-recommends --no-suggests --no-conflicts --no-breaks --no-replaces \
    --no-enhances "$1" |
    awk '/^ +\|?(Pre)?Depends:/ { if (!alt) print $2; alt = ($1 ~ /^\|/) }' |
    grep -v '^<' | sed 's/:.*//' || true
}
declare -A seen=()   # package -> 1 once visited
keep=()              # packages to download
queue=("${roots[@]}")
while [ ${#queue[@]} -gt 0 ]; do
  pkg=${queue[0]}
  queue=("${queue[@]:1}")
  [ -n "${seen[$pkg]:-}" ] && continue
  seen[$pkg]=1
  [[ $pkg =~ $exclude_re ]] && continue
  keep+=("$pkg")
  mapfile -t more < <(deps_of "$pkg")
  queue+=("${more[@]}")
done
echo "fetch-gpu-debs: ${#keep[@]} packages: ${keep[*]}"

mkdir -p "$dir"
cd "$dir"
rm -f -- *.deb MANIFEST   # DIR holds only this script's output; old versions would linger
if ! apt-get download "${keep[@]}"; then
  [ "$(id -u)" -eq 0 ] || { echo "fetch-gpu-debs: apt-get download failed (not root, so no apt-get update)" >&2; exit 1; }
  apt-get update -qq
  apt-get download "${keep[@]}"
fi
debs=(*.deb)   # what was downloaded, as <package>_<version>_<arch>.deb
sha256sum -- "${debs[@]}" > MANIFEST
echo "fetch-gpu-debs: ${#debs[@]} files, $(du -ch -- "${debs[@]}" | tail -1 | cut -f1) in $PWD (MANIFEST: sha256)"
