#!/usr/bin/env bash
# Builds dist/whisper-backup_VERSION_ARCH.deb with dpkg-deb from what `make` built: the tools
# (Swift runtime linked in, so no dependency on a Swift toolchain), wrappers, man pages,
# completions, systemd units and /etc/default/whisper-backup (a conffile). Depends: the shared
# libraries the tools link (found by dpkg-shlibdeps: libdeflate0, zlib1g, libssl3, libc6,
# libstdc++6, libgcc-s1), libcurl4 (loaded with dlopen at the first HTTP request, so named in
# control.in) and what the wrappers run.
#
#   packaging/build-deb.sh [--scratch .build-dist] [--out dist] [--compress gzip|xz|zstd]
#   (`make deb` runs it; gzip by default: every dpkg reads it, and xz takes a minute longer)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
scratch=.build-dist out=dist compress=gzip
while [ $# -gt 0 ]; do
    case "$1" in
        --scratch) scratch=$2; shift 2 ;;
        --out) out=$2; shift 2 ;;
        --compress) compress=$2; shift 2 ;;
        *) echo "build-deb.sh: unknown option $1" >&2; exit 2 ;;
    esac
done
cd "$repo"
for c in dpkg-deb dpkg-shlibdeps; do
    command -v "$c" >/dev/null || { echo "build-deb.sh: $c missing (apt-get install dpkg-dev)" >&2; exit 2; }
done

work=$(mktemp -d "${TMPDIR:-/tmp}/whisper-backup-deb.XXXXXX")
trap 'rm -rf "$work"' EXIT
stage=$work/root
make --no-print-directory install-files DESTDIR="$stage" PREFIX=/usr SYSCONFDIR=/etc SCRATCH="$scratch" >/dev/null
chmod 600 "$stage/etc/default/whisper-backup"
# Debian ships man pages compressed (man follows the .so link of whisper-restore to them).
gzip -9n "$stage"/usr/share/man/man1/*.1

version=$(sed -n 's/^public let wspVersion = "\(.*\)"/\1/p' Sources/WhisperBackup/Version.swift)
arch=$(dpkg --print-architecture)
# dpkg-shlibdeps wants a debian/control beside it.
mkdir -p "$work/src/debian"
printf 'Source: whisper-backup\n\nPackage: whisper-backup\nArchitecture: any\n' > "$work/src/debian/control"
shlibs=$(cd "$work/src" && dpkg-shlibdeps -O "$stage"/usr/bin/wsp-* 2>/dev/null | sed -n 's/^shlibs:Depends=//p')
[ -n "$shlibs" ] || { echo "build-deb.sh: dpkg-shlibdeps found no libraries" >&2; exit 1; }
if grep -q swift <<<"$shlibs" || ldd "$stage"/usr/bin/wsp-find | grep -q /opt/swift; then
    echo "build-deb.sh: the tools link the Swift runtime dynamically; build with: make" >&2; exit 1
fi
size=$(du -sk --exclude=DEBIAN "$stage" | cut -f1)

mkdir -p "$stage/DEBIAN"
sed -e "s/@VERSION@/$version/" -e "s/@ARCH@/$arch/" -e "s/@SIZE@/$size/" -e "s/@SHLIBS@/$shlibs/" \
    packaging/debian/control.in > "$stage/DEBIAN/control"
cp packaging/debian/conffiles "$stage/DEBIAN/conffiles"
for s in postinst prerm postrm; do install -m 755 "packaging/debian/$s" "$stage/DEBIAN/$s"; done
(cd "$stage" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z | xargs -0 md5sum) > "$stage/DEBIAN/md5sums"

mkdir -p "$out"
deb="$out/whisper-backup_${version}_${arch}.deb"
dpkg-deb --root-owner-group --build -Z"$compress" "$stage" "$deb" >/dev/null
echo "$deb"
