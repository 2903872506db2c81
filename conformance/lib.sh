# shellcheck shell=bash
# SPDX-License-Identifier: Apache-2.0 OR MIT
#
# armfw conformance harness: shared shell functions. Source this file; do not run it.
#
# Real arm64 KVM is reached by booting a Debian arm64 kernel under
# `qemu-system-aarch64 -M virt,virtualization=on` (software emulation: the emulated
# machine owns EL2, so its kernel brings up KVM) with an initramfs whose /init is a
# static aarch64-unknown-linux-musl program. See docs/kvm-backend-notes.md.
#
# The harness's own steps (record extraction, host specs, initramfs writing, the reports)
# are `armfw-harness` commands (crates/armfw-harness), built for this machine by
# build_harness and run as `harness COMMAND ...`.
#
# Functions (progress goes to stderr, results to stdout and to the globals named):
#   ensure_tools                      qemu-system-aarch64, dpkg, the musl target
#   build_harness                     cargo build -p armfw-harness for this machine -> ARMFW_HARNESS
#   harness COMMAND [ARGS...]         runs that armfw-harness
#   parse_hosts SPEC                  the hosts of SPEC (SERIES:CPU,...) -> ARMFW_HOSTS (array)
#   fetch_kernel SERIES               6.1 | 6.12 | 7  -> ARMFW_KERNEL_RELEASE, ARMFW_KERNEL_VMLINUZ
#   fetch_busybox                     Debian's static arm64 busybox -> ARMFW_BUSYBOX
#   build_static [CARGO ARGS...]      cargo build --release --target aarch64-unknown-linux-musl
#   test_static [CARGO ARGS...]       cargo test for that target under qemu-user (unit tests)
#   make_initramfs OUT BINARY [FILE...]
#   boot_host VMLINUZ CPU INITRD LOG [KERNEL ARGS...]
#   extract_records LOG               the program's @@ARMFW records, one JSON value a line
#
# Every path below can be overridden from the environment.

ARMFW_ROOT=${ARMFW_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
ARMFW_CACHE=${ARMFW_CACHE:-$ARMFW_ROOT/.cache}
# The aarch64 build has its own target dir: it never shares one with host builds.
ARMFW_TARGET_DIR=${ARMFW_TARGET_DIR:-$ARMFW_ROOT/target-aarch64}
ARMFW_MUSL_TARGET=aarch64-unknown-linux-musl
# Seconds before a boot is killed.
ARMFW_BOOT_TIMEOUT=${ARMFW_BOOT_TIMEOUT:-120}
# Seconds after which the private apt indexes are refreshed (fetch_kernel).
ARMFW_APT_MAX_AGE=${ARMFW_APT_MAX_AGE:-21600}
# 1: `-cpu max` becomes `max,pauth-impdef=on` (QEMU's architected pointer-authentication
# algorithm is very slow under emulation; the IMPDEF one is not).
ARMFW_MAX_PAUTH_IMPDEF=${ARMFW_MAX_PAUTH_IMPDEF:-1}

_armfw_log() { printf '[armfw] %s\n' "$*" >&2; }
_armfw_die() { printf '[armfw] error: %s\n' "$*" >&2; return 1; }

# Installs Debian packages with the machine's apt (apt-get update once per shell first).
_armfw_apt_install() {
    _armfw_log "installing $*"
    if [[ -z ${_ARMFW_APT_UPDATED:-} ]]; then
        DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2 || return 1
        _ARMFW_APT_UPDATED=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >&2
}

# ensure_tools: installs what the harness needs, and nothing that is already there:
# qemu-system-arm (qemu-system-aarch64) and dpkg from Debian, the musl target from rustup.
ensure_tools() {
    local missing=()
    command -v qemu-system-aarch64 >/dev/null 2>&1 || missing+=(qemu-system-arm)
    command -v dpkg-deb >/dev/null 2>&1 || missing+=(dpkg)
    if ((${#missing[@]})); then
        _armfw_apt_install "${missing[@]}" || return 1
    fi
    if ! rustup target list --installed 2>/dev/null | grep -qx "$ARMFW_MUSL_TARGET"; then
        rustup target add "$ARMFW_MUSL_TARGET" >&2 || return 1
    fi
}

# ---------------------------------------------------------------------------------------
# Kernels: a private apt configuration under $ARMFW_CACHE/apt. The machine's own apt
# setup is read (for its proxies and options) but never changed.

# The archive addresses come from the machine's apt sources, never from this repository.
_armfw_archive_uris() {
    local f=${ARMFW_APT_SOURCES:-/etc/apt/sources.list.d/debian.sources}
    [[ -r $f ]] || { _armfw_die "no apt sources at $f (set ARMFW_APT_SOURCES)"; return 1; }
    # deb822: `URIs:` lines; the security archive is the one whose URI names it.
    local uris
    uris=$(sed -n 's/^[Uu][Rr][Ii][Ss]:[[:space:]]*//p' "$f" | tr -s ' \t' '\n')
    ARMFW_DEBIAN_URI=$(grep -v -- '-security' <<<"$uris" | head -n1)
    ARMFW_SECURITY_URI=$(grep -- '-security' <<<"$uris" | head -n1)
    [[ -n $ARMFW_DEBIAN_URI ]] || { _armfw_die "no URIs: line in $f"; return 1; }
    ARMFW_DEBIAN_URI=${ARMFW_DEBIAN_URI%/}
    ARMFW_SECURITY_URI=${ARMFW_SECURITY_URI%/}
    : "${ARMFW_SECURITY_URI:=${ARMFW_DEBIAN_URI}-security}"
}

# _armfw_apt_conf DIR: writes DIR/apt.conf, an apt configuration for arm64 whose sources,
# preferences, state and cache are all under DIR.
_armfw_apt_conf() {
    local d=${1:?_armfw_apt_conf DIR}
    cat >"$d"/apt.conf <<CONF
Dir::Etc::SourceList "$d/sources.list";
Dir::Etc::SourceParts "$d/sources.list.d";
Dir::Etc::Preferences "$d/preferences";
Dir::Etc::PreferencesParts "$d/preferences.d";
Dir::State "$d/state";
Dir::State::Lists "$d/state/lists";
Dir::State::status "$d/state/status";
Dir::Cache "$d/cache";
Dir::Cache::Archives "$d/cache/archives";
Dir::Cache::pkgcache "$d/cache/pkgcache.bin";
Dir::Cache::srcpkgcache "$d/cache/srcpkgcache.bin";
APT::Architecture "arm64";
APT::Architectures { "arm64"; };
APT::Sandbox::User "root";
Acquire::Languages "none";
Acquire::IndexTargets::deb::Contents-deb::DefaultEnabled "false";
CONF
}

# Writes the private configuration (idempotent) and sets _ARMFW_APT (the apt-get/apt-cache
# options that select it).
_armfw_apt_setup() {
    local d=$ARMFW_CACHE/apt
    _armfw_archive_uris || return 1
    mkdir -p "$d"/state/lists/partial "$d"/cache/archives/partial "$d"/sources.list.d \
        "$d"/preferences.d "$d"/debs || return 1
    : >>"$d"/state/status
    local keyring=${ARMFW_APT_KEYRING:-/usr/share/keyrings/debian-archive-keyring.gpg}
    cat >"$d"/sources.list.new <<SRC
deb [arch=arm64 signed-by=$keyring] $ARMFW_DEBIAN_URI bookworm main
deb [arch=arm64 signed-by=$keyring] $ARMFW_DEBIAN_URI bookworm-updates main
deb [arch=arm64 signed-by=$keyring] $ARMFW_SECURITY_URI bookworm-security main
deb [arch=arm64 signed-by=$keyring] $ARMFW_DEBIAN_URI sid main
SRC
    mv "$d"/sources.list.new "$d"/sources.list
    # sid only supplies the 7.x kernel, taken by exact package name; never a candidate.
    cat >"$d"/preferences <<'PREF'
Package: *
Pin: release n=sid
Pin-Priority: 50
PREF
    _armfw_apt_conf "$d"
    # -c is read after the machine's apt.conf.d, so these settings win.
    _ARMFW_APT=(-c "$d/apt.conf")
}

# Refreshes the private indexes when they are missing or older than ARMFW_APT_MAX_AGE.
_armfw_apt_update() {
    local stamp=$ARMFW_CACHE/apt/state/updated now
    now=$(date +%s)
    if [[ -f $stamp ]] && ((now - $(stat -c %Y "$stamp") < ARMFW_APT_MAX_AGE)); then
        return 0
    fi
    _armfw_log "apt-get update (private arm64 configuration)"
    apt-get "${_ARMFW_APT[@]}" update -qq >&2 || return 1
    touch "$stamp"
}

# Prints the installable package names of the newest kernel of SERIES: first the release
# string, then the packages to download.
_armfw_kernel_packages() {
    local series=$1 names rel meta
    local -a A=("${_ARMFW_APT[@]}")
    case $series in
    6.1)
        # bookworm, bookworm-updates and bookworm-security: linux-image-6.1.0-NN-arm64.
        rel=$(apt-cache "${A[@]}" pkgnames linux-image-6.1.0- |
            sed -n 's/^linux-image-\(6\.1\.0-[0-9]*-arm64\)$/\1/p' | sort -V | tail -n1)
        ;;
    6.12)
        # bookworm-security: the meta package names the current release.
        meta=$(apt-cache "${A[@]}" show linux-image-6.12-arm64 2>/dev/null |
            sed -n 's/^Depends:.*linux-image-\(6\.12\.[0-9]*+deb[0-9]*-arm64\) .*/\1/p' |
            sort -V | tail -n1)
        rel=${meta:-$(apt-cache "${A[@]}" pkgnames linux-image-6.12. |
            sed -n 's/^linux-image-\(6\.12\.[0-9]*+deb[0-9]*-arm64\)$/\1/p' | sort -V | tail -n1)}
        ;;
    7)
        # sid: the newest 7.x.
        rel=$(apt-cache "${A[@]}" pkgnames linux-image-7. |
            sed -n 's/^linux-image-\(7\.[0-9]*\.[0-9]*+deb[0-9]*-arm64\)$/\1/p' |
            sort -V | tail -n1)
        ;;
    *)
        _armfw_die "unknown kernel series '$series' (6.1, 6.12 or 7)"
        return 1
        ;;
    esac
    [[ -n $rel ]] || { _armfw_die "no arm64 kernel package of series $series found"; return 1; }
    echo "$rel"
    # Newer Debian packaging splits the image: vmlinuz in linux-binary-*, config and
    # System.map in linux-base-*.
    names=$(apt-cache "${A[@]}" pkgnames "linux-binary-$rel")
    if grep -qx "linux-binary-$rel" <<<"$names"; then
        echo "linux-binary-$rel"
        apt-cache "${A[@]}" pkgnames "linux-base-$rel" | grep -x "linux-base-$rel" || true
    else
        echo "linux-image-$rel"
    fi
}

# The vmlinuz inside an unpacked kernel DIR of release REL: boot/vmlinuz-REL (classic
# packages) or usr/lib/modules/REL/vmlinuz (split packages).
_armfw_vmlinuz_in() {
    local f
    for f in "$1/boot/vmlinuz-$2" "$1/usr/lib/modules/$2/vmlinuz" "$1/lib/modules/$2/vmlinuz"; do
        [[ -f $f ]] && { echo "$f"; return 0; }
    done
    return 1
}

# The newest already unpacked kernel of SERIES, if any.
_armfw_cached_kernel() {
    local series=$1 glob
    case $series in
    6.1) glob='6.1.0-*-arm64' ;;
    6.12) glob='6.12.*-arm64' ;;
    7) glob='7.*-arm64' ;;
    *) return 1 ;;
    esac
    (cd "$ARMFW_CACHE/kernels" 2>/dev/null && for d in $glob; do
        _armfw_vmlinuz_in "$d" "$d" >/dev/null && echo "$d"
    done) | sort -V | tail -n1
}

# fetch_kernel SERIES: makes sure the newest arm64 kernel of SERIES (6.1, 6.12 or 7) is
# unpacked under $ARMFW_CACHE/kernels/<release>/, downloading it only if it is not.
# Sets ARMFW_KERNEL_RELEASE (e.g. 6.12.117+deb12-arm64), ARMFW_KERNEL_VERSION (6.12.117,
# empty if the package list does not say) and ARMFW_KERNEL_VMLINUZ, and
# prints "<release> <vmlinuz>". If the archive cannot be reached, falls back to the newest
# kernel of SERIES already in the cache. ARMFW_KERNEL_OFFLINE=1 uses the cache only.
fetch_kernel() {
    local series=${1:?fetch_kernel SERIES}
    local rel="" pkgs=() dir tmp deb vmlinuz
    ARMFW_KERNEL_RELEASE="" ARMFW_KERNEL_VMLINUZ=""
    case $series in
    6.1 | 6.12 | 7) ;;
    *) _armfw_die "unknown kernel series '$series' (6.1, 6.12 or 7)"; return 1 ;;
    esac
    if [[ ${ARMFW_KERNEL_OFFLINE:-0} != 1 ]] && _armfw_apt_setup && _armfw_apt_update; then
        mapfile -t pkgs < <(_armfw_kernel_packages "$series")
        rel=${pkgs[0]:-}
        pkgs=("${pkgs[@]:1}")
    fi
    if [[ -z $rel ]]; then
        rel=$(_armfw_cached_kernel "$series")
        [[ -n $rel ]] || { _armfw_die "kernel series $series: not in the archive nor in the cache"; return 1; }
        _armfw_log "kernel series $series: using cached $rel"
    fi
    dir=$ARMFW_CACHE/kernels/$rel
    if ! vmlinuz=$(_armfw_vmlinuz_in "$dir" "$rel"); then
        ((${#pkgs[@]})) || { _armfw_die "no package for $rel"; return 1; }
        mkdir -p "$ARMFW_CACHE/kernels" || return 1
        tmp=$(mktemp -d "$ARMFW_CACHE/kernels/.unpack.XXXXXX") || return 1
        _armfw_log "downloading ${pkgs[*]}"
        (cd "$tmp" && apt-get "${_ARMFW_APT[@]}" download -q "${pkgs[@]/%/:arm64}" >&2) || {
            rm -rf "$tmp"
            return 1
        }
        for deb in "$tmp"/*.deb; do
            dpkg -x "$deb" "$tmp/root" || { rm -rf "$tmp"; return 1; }
            # shellcheck disable=SC2016 # dpkg-deb's own ${field} syntax
            dpkg-deb --show --showformat='${Package} ${Version}\n' "$deb" >>"$tmp/root/armfw-packages"
        done
        _armfw_vmlinuz_in "$tmp/root" "$rel" >/dev/null || {
            rm -rf "$tmp"
            _armfw_die "no vmlinuz of $rel in ${pkgs[*]}"
            return 1
        }
        rm -rf "$dir" && mv "$tmp/root" "$dir" && rm -rf "$tmp" || return 1
        vmlinuz=$(_armfw_vmlinuz_in "$dir" "$rel") || return 1
        _armfw_log "unpacked $rel into $dir"
    fi
    ARMFW_KERNEL_RELEASE=$rel
    ARMFW_KERNEL_VMLINUZ=$vmlinuz
    # The upstream version of the image package (6.1.192-3 -> 6.1.192): the one `armfw
    # probe` names a host's profile by (linux-<version>-<cpu>).
    ARMFW_KERNEL_VERSION=$(awk 'NR == 1 { sub(/-[^-]*$/, "", $2); print $2 }' \
        "$ARMFW_CACHE/kernels/$rel/armfw-packages" 2>/dev/null)
    echo "$ARMFW_KERNEL_RELEASE $ARMFW_KERNEL_VMLINUZ"
}

# fetch_qemu SUITE: Debian's arm64 QEMU of SUITE (bookworm: 7.2, trixie: 10.0, sid: 11.1),
# its Depends closure and busybox-static, unpacked under $ARMFW_CACHE/qemu/SUITE/root/ with a
# private apt configuration of that suite alone (its own sources, state and cache; the
# machine's apt setup is read for its archive address, never changed), downloading only when
# the folder is not there yet. Sets ARMFW_QEMU_ROOT (the unpacked tree) and
# ARMFW_QEMU_VERSION (qemu-system-arm's package version), and prints both. ARMFW_KERNEL_OFFLINE=1
# uses the cache only.
fetch_qemu() {
    local suite=${1:?fetch_qemu SUITE} d list pkgs=() deb
    case $suite in
    bookworm | trixie) list="$suite $suite-updates" ;;
    sid) list=sid ;;
    *) _armfw_die "fetch_qemu: unknown suite '$suite' (bookworm, trixie or sid)"; return 1 ;;
    esac
    d=$ARMFW_CACHE/qemu/$suite
    if [[ ! -f $d/version ]]; then
        [[ ${ARMFW_KERNEL_OFFLINE:-0} != 1 ]] || { _armfw_die "fetch_qemu: $suite is not in the cache"; return 1; }
        _armfw_archive_uris || return 1
        local a=$d/apt keyring=${ARMFW_APT_KEYRING:-/usr/share/keyrings/debian-archive-keyring.gpg} s
        rm -rf "$d" && mkdir -p "$a"/state/lists/partial "$a"/cache/archives/partial \
            "$a"/sources.list.d "$a"/preferences.d "$d"/debs "$d"/root.new || return 1
        : >"$a"/state/status
        for s in $list; do
            echo "deb [arch=arm64 signed-by=$keyring] $ARMFW_DEBIAN_URI $s main"
        done >"$a"/sources.list
        [[ $suite == sid ]] || echo "deb [arch=arm64 signed-by=$keyring] $ARMFW_SECURITY_URI $suite-security main" >>"$a"/sources.list
        _armfw_apt_conf "$a"
        _armfw_log "apt-get update (private arm64 configuration, $suite, for QEMU)"
        apt-get -c "$a/apt.conf" update -qq >&2 || return 1
        # The real packages of the closure (virtual ones are printed as <name>).
        mapfile -t pkgs < <(apt-cache -c "$a/apt.conf" depends --recurse --no-recommends \
            --no-suggests --no-conflicts --no-breaks --no-replaces --no-enhances \
            qemu-system-arm busybox-static 2>/dev/null | grep -v '^[ <]' | sort -u)
        ((${#pkgs[@]})) || { _armfw_die "fetch_qemu: no qemu-system-arm in $suite"; return 1; }
        (cd "$d/debs" && apt-get -c "$a/apt.conf" download -qq "${pkgs[@]}" >&2) || return 1
        for deb in "$d"/debs/*.deb; do
            dpkg-deb -x "$deb" "$d/root.new" || return 1
        done
        dpkg-deb -f "$d"/debs/qemu-system-arm_*.deb Version >"$d/version.new" &&
            mv "$d/root.new" "$d/root" && rm -rf "$d/debs" "$a/cache/archives" &&
            mv "$d/version.new" "$d/version" || return 1
        _armfw_log "unpacked QEMU $(cat "$d/version") ($suite, ${#pkgs[@]} packages) into $d/root"
    fi
    ARMFW_QEMU_ROOT=$d/root
    ARMFW_QEMU_VERSION=$(cat "$d/version")
    echo "$ARMFW_QEMU_VERSION $ARMFW_QEMU_ROOT"
}

# qemu_tree SUITE DIR: the files QEMU needs to run inside an emulated host, copied into DIR
# (for an initramfs): usr/bin/qemu-system-aarch64, the shared libraries of its DT_NEEDED
# closure and the dynamic loader (at their paths in the package tree), and bin/busybox with
# bin/sh. fetch_qemu SUITE first.
qemu_tree() {
    local suite=${1:?qemu_tree SUITE DIR} out=${2:?qemu_tree SUITE DIR} root lib f interp
    root=$ARMFW_CACHE/qemu/$suite/root
    [[ -x $root/usr/bin/qemu-system-aarch64 ]] || { _armfw_die "qemu_tree: fetch_qemu $suite first"; return 1; }
    mkdir -p "$out/usr/bin" "$out/bin" || return 1
    # busybox-static is in usr/bin from trixie on, in bin before.
    local bb=$root/usr/bin/busybox
    [[ -e $bb ]] || bb=$root/bin/busybox
    cp "$root/usr/bin/qemu-system-aarch64" "$out/usr/bin/" &&
        cp "$bb" "$out/bin/busybox" && ln -sf busybox "$out/bin/sh" || return 1
    interp=$(readelf -l "$root/usr/bin/qemu-system-aarch64" | sed -n 's/.*interpreter: \(.*\)]$/\1/p')
    local -a todo=("$root/usr/bin/qemu-system-aarch64") seen=()
    while ((${#todo[@]})); do
        f=${todo[0]} todo=("${todo[@]:1}")
        for lib in $(readelf -d "$f" | sed -n 's/.*(NEEDED).*\[\(.*\)\]$/\1/p'); do
            [[ " ${seen[*]} " == *" $lib "* ]] && continue
            seen+=("$lib")
            local found=""
            for dir in lib/aarch64-linux-gnu usr/lib/aarch64-linux-gnu lib usr/lib; do
                if [[ -e $root/$dir/$lib ]]; then found=$dir/$lib; break; fi
            done
            [[ -n $found ]] || { _armfw_die "qemu_tree: $lib (needed by ${f#"$root"/}) is not in the $suite packages"; return 1; }
            mkdir -p "$out/$(dirname "$found")" && cp -L "$root/$found" "$out/$found" || return 1
            todo+=("$root/$found")
        done
    done
    # The loader, at the path the binary asks for (a symlink into usr/lib on merged-/usr trees).
    mkdir -p "$out$(dirname "$interp")" && cp -L "$root$interp" "$out$interp" 2>/dev/null ||
        cp -L "$root/usr$interp" "$out$interp" || return 1
    _armfw_log "qemu_tree $suite: ${#seen[@]} libraries, $(du -sh "$out" | cut -f1)"
}

# fetch_busybox: makes sure Debian's busybox-static for arm64 (bookworm) is unpacked under
# $ARMFW_CACHE/busybox/, downloading it only if it is not (with the private apt setup of
# fetch_kernel). Sets ARMFW_BUSYBOX (the static binary) and prints its path. The package and
# version are in $ARMFW_CACHE/busybox/package. ARMFW_KERNEL_OFFLINE=1 uses the cache only.
fetch_busybox() {
    local dir=$ARMFW_CACHE/busybox tmp deb
    ARMFW_BUSYBOX=$dir/busybox
    if [[ ! -x $ARMFW_BUSYBOX ]]; then
        [[ ${ARMFW_KERNEL_OFFLINE:-0} != 1 ]] || { _armfw_die "busybox is not in the cache (offline)"; return 1; }
        _armfw_apt_setup && _armfw_apt_update || return 1
        mkdir -p "$ARMFW_CACHE" || return 1
        tmp=$(mktemp -d "$ARMFW_CACHE/.busybox.XXXXXX") || return 1
        _armfw_log "downloading busybox-static:arm64"
        if ! (cd "$tmp" && apt-get "${_ARMFW_APT[@]}" download -q busybox-static:arm64 >&2); then
            rm -rf "$tmp"
            return 1
        fi
        deb=$(compgen -G "$tmp/busybox-static_*.deb" | head -n1)
        if [[ -z $deb ]] || ! dpkg -x "$deb" "$tmp/root" || [[ ! -x $tmp/root/bin/busybox ]]; then
            rm -rf "$tmp"
            _armfw_die "no bin/busybox in busybox-static:arm64"
            return 1
        fi
        # shellcheck disable=SC2016 # dpkg-deb's own ${field} syntax
        if ! { mkdir -p "$dir" &&
            dpkg-deb --show --showformat='${Package} ${Version} ${Architecture}\n' "$deb" >"$dir/package" &&
            cp "$tmp/root/bin/busybox" "$dir/busybox.new" && mv "$dir/busybox.new" "$ARMFW_BUSYBOX"; }; then
            rm -rf "$tmp"
            return 1
        fi
        rm -rf "$tmp"
        _armfw_log "unpacked $(cat "$dir/package") into $dir"
    fi
    echo "$ARMFW_BUSYBOX"
}

# ---------------------------------------------------------------------------------------
# The program that runs as /init.

# build_static [CARGO ARGS...]: cargo build --release for aarch64-unknown-linux-musl into
# $ARMFW_TARGET_DIR, linked by rustc's bundled rust-lld (no aarch64 C toolchain needed, no
# global cargo configuration). Artefacts: $ARMFW_TARGET_DIR/aarch64-unknown-linux-musl/release/.
build_static() {
    (cd "$ARMFW_ROOT" &&
        CARGO_TARGET_DIR=$ARMFW_TARGET_DIR \
        CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER=rust-lld \
        cargo build --release --target "$ARMFW_MUSL_TARGET" "$@" >&2)
}

# test_static [CARGO ARGS...]: cargo test for aarch64-unknown-linux-musl, with the test
# binaries run by QEMU's user-mode emulator (qemu-user-static, installed on demand). There
# is no /dev/kvm there: this runs unit tests only (e.g. `test_static -p armfw-kvm`).
test_static() {
    if ! command -v qemu-aarch64-static >/dev/null 2>&1; then
        _armfw_apt_install qemu-user-static || return 1
    fi
    (cd "$ARMFW_ROOT" &&
        CARGO_TARGET_DIR=$ARMFW_TARGET_DIR \
        CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER=rust-lld \
        CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_RUNNER=qemu-aarch64-static \
        cargo test --release --target "$ARMFW_MUSL_TARGET" "$@")
}

# make_initramfs OUT BINARY [FILE...]: writes a cpio (newc) archive OUT holding /init (a
# copy of BINARY), /dev/console, /dev, /proc, /sys, and each FILE under /armfw/ (by its
# base name; directories are copied whole). `armfw-harness initramfs` writes it.
make_initramfs() {
    local out=${1:?make_initramfs OUT BINARY [FILE...]} bin=${2:?make_initramfs OUT BINARY [FILE...]}
    shift 2
    [[ -x $bin ]] || { _armfw_die "make_initramfs: $bin is not an executable"; return 1; }
    harness initramfs "$out" --init "$bin" "$@"
}

# ---------------------------------------------------------------------------------------
# The harness's steps on this machine.

# build_harness: builds armfw-harness for this machine (quietly) and sets ARMFW_HARNESS.
build_harness() {
    (cd "$ARMFW_ROOT" && cargo build -q -p armfw-harness >&2) || return 1
    ARMFW_HARNESS=$ARMFW_ROOT/target/debug/armfw-harness
}

# harness COMMAND [ARGS...]: runs armfw-harness (build_harness first).
harness() {
    "${ARMFW_HARNESS:?build_harness first}" "$@"
}

# parse_hosts SPEC: the hosts of SPEC (comma-separated SERIES:CPU; `all` as SERIES is 6.1,
# 6.12 and 7, as CPU the default set max, cortex-a72, neoverse-n1, cortex-a53), in order and
# without repeats, into the array ARMFW_HOSTS. A bad spec: one line on stderr, status 2.
parse_hosts() {
    local list
    list=$(harness hosts "${1:?parse_hosts SPEC}") || return 2
    mapfile -t ARMFW_HOSTS <<<"$list"
}

# ---------------------------------------------------------------------------------------
# Booting.

# The -cpu value QEMU gets for CPU.
qemu_cpu_arg() {
    if [[ $1 == max && $ARMFW_MAX_PAUTH_IMPDEF == 1 ]]; then
        echo 'max,pauth-impdef=on'
    else
        echo "$1"
    fi
}

# boot_host VMLINUZ CPU INITRD LOG [KERNEL ARGS...]: boots the arm64 kernel VMLINUZ on
# QEMU's `virt` machine with EL2 (so KVM comes up) and CPU model CPU, with INITRD as the
# initramfs; the serial console and QEMU's own messages go to LOG. The kernel command line
# carries `armfw.cpu=CPU` (the -cpu value as passed here, before qemu_cpu_arg) so the
# program can report which host it ran on; it also sets `quiet loglevel=0` so that the
# kernel stays silent. Returns QEMU's exit status: 0 after the program powered off, 124
# when ARMFW_BOOT_TIMEOUT seconds ran out. Sets ARMFW_BOOT_SECONDS (wall clock). QEMU gets
# the words of the array ARMFW_QEMU_ARGS too, if the caller set it (devices to attach).
boot_host() {
    local vmlinuz=${1:?boot_host VMLINUZ CPU INITRD LOG [ARGS...]} cpu=${2:?} initrd=${3:?} log=${4:?}
    shift 4
    local t0 t1 rc
    t0=$(date +%s.%N)
    timeout -k 5 "$ARMFW_BOOT_TIMEOUT" qemu-system-aarch64 \
        -M virt,virtualization=on,gic-version=3 -cpu "$(qemu_cpu_arg "$cpu")" \
        -smp 2 -m 1024 -nographic -nic none -no-reboot \
        -kernel "$vmlinuz" -initrd "$initrd" \
        ${ARMFW_QEMU_ARGS[@]+"${ARMFW_QEMU_ARGS[@]}"} \
        -append "console=ttyAMA0 panic=-1 quiet loglevel=0 armfw.cpu=$cpu $*" \
        </dev/null >"$log" 2>&1
    rc=$?
    t1=$(date +%s.%N)
    # shellcheck disable=SC2034 # read by the caller
    ARMFW_BOOT_SECONDS=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')
    return $rc
}

# extract_records LOG: prints the JSON of each `@@ARMFW <seq> <json>` line of LOG, in
# order (`armfw-harness records`). Fails (status 1, why on stderr) unless the records are
# numbered 0, 1, 2, ... without a gap, are JSON and end with `@@ARMFW-END <count>`, so that
# a cut or garbled console log is never mistaken for a complete result. Kernel messages may
# surround the records: everything before the marker on a line, and carriage returns, are
# ignored.
extract_records() {
    harness records "${1:?extract_records LOG}"
}
