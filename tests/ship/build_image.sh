#!/usr/bin/env bash
# Builds orderfast's container image with podman, without a registry: `make image` runs it, and so
# does tests/ship/test_image.py.
#
# The Dockerfile's default base is the public Python image. With no registry to pull it from, this
# makes a Debian trixie root filesystem with debootstrap (python3, python3-venv, ca-certificates —
# what the public image offers the Dockerfile), imports it into podman as a local image and builds
# on it. The base is made once per recipe: its tag is a hash of make_base below, its tarball is kept
# in $ORDERFAST_IMAGE_CACHE, and podman caches the layers, so a repeated build only redoes what
# changed (a change outside rust/ and the Cargo files re-packages the wheel without recompiling the
# core). Each stage is tagged (localhost/orderfast-stage:*) and podman's dangling images — what
# earlier builds left behind — are removed after each build, so the store does not grow.
#
# Environment:
#   ORDERFAST_IMAGE        the tag to build (default localhost/orderfast:dev)
#   ORDERFAST_IMAGE_EXTRAS the Dockerfile's EXTRAS (e.g. grpc,temporal; default none)
#   ORDERFAST_BASE_IMAGE   build on this image instead (e.g. docker.io/library/python:3.13-slim-trixie
#                          where a registry is reachable); no debootstrap then
#   ORDERFAST_IMAGE_CACHE  where base tarballs are kept (default /var/cache/orderfast-image)
#   DEBIAN_MIRROR          default http://deb.debian.org/debian
#   ORDERFAST_BUILD_CA_BUNDLE  the CA bundle pip and cargo trust during the build (default: the host's)
#
# Needs root (debootstrap, podman's chroot isolation), podman and debootstrap (apt-get install podman
# debootstrap). Prints the image's size on its last line.
set -euo pipefail
cd "$(dirname "$0")/../.."

IMAGE=${ORDERFAST_IMAGE:-localhost/orderfast:dev}
EXTRAS=${ORDERFAST_IMAGE_EXTRAS:-}
CACHE=${ORDERFAST_IMAGE_CACHE:-/var/cache/orderfast-image}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
SUITE=trixie

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'build_image.sh: %s\n' "$*" >&2; exit 1; }

command -v podman >/dev/null || die "podman is missing (apt-get install podman debootstrap)"
[ "$(id -u)" = 0 ] || die "run as root (podman's chroot isolation and debootstrap need it)"

mkdir -p "$CACHE"
# One build at a time on this machine (parallel `make test` runs share podman's store).
exec 9>"$CACHE/.lock"
flock 9

# make_base DIR: a minimal Debian root filesystem with what the Dockerfile expects of its base.
make_base() {
    local root=$1
    debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
        "$SUITE" "$root" "$MIRROR" >"$root.log" 2>&1 || { tail -20 "$root.log" >&2; return 1; }
    rm -f "$root/etc/apt/sources.list"
    cat >"$root/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $MIRROR
Suites: $SUITE $SUITE-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: $SUITE-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
    # As Debian's slim images do: no documentation (copyright files stay), manuals or translations,
    # now and for packages installed later.
    cat >"$root/etc/dpkg/dpkg.cfg.d/slim" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
path-exclude /usr/share/lintian/*
EOF
    find "$root/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
    find "$root/usr/share/doc" -mindepth 1 -type d -empty -delete
    find "$root/usr/share/locale" -mindepth 1 -maxdepth 1 -not -name locale.alias -exec rm -rf {} +
    rm -rf "$root"/usr/share/{man,info,lintian}/* "$root"/var/lib/apt/lists/* \
        "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb "$root"/var/cache/debconf/*-old \
        "$root"/var/log/* "$root"/tmp/* "$root"/root/.cache
    : >"$root/etc/hostname"
    : >"$root/etc/resolv.conf"
}

build_base() {
    local recipe tag tarball root
    recipe=$( { declare -f make_base; echo "$SUITE $MIRROR"; } | sha256sum | cut -c1-12)
    tag="localhost/orderfast-base:$SUITE-$recipe"
    tarball="$CACHE/base-$SUITE-$recipe.tar"
    if podman image exists "$tag"; then
        echo "$tag"
        return
    fi
    if [ ! -s "$tarball" ]; then
        command -v debootstrap >/dev/null || die "debootstrap is missing (apt-get install debootstrap)"
        log "making the base root filesystem: debootstrap $SUITE from $MIRROR (about a minute)"
        root=$(mktemp -d "$CACHE/rootfs.XXXXXX")
        trap 'rm -rf "$root" "$root.log"' EXIT
        make_base "$root"
        tar --numeric-owner --xattrs -C "$root" -cf "$tarball.part" .
        mv "$tarball.part" "$tarball"
        rm -rf "$root" "$root.log"
        trap - EXIT
    fi
    log "importing $tarball as $tag"
    podman import --quiet --change 'CMD ["python3"]' --message "debootstrap $SUITE minbase + python3" \
        "$tarball" "$tag" >/dev/null
    echo "$tag"
}

if [ -n "${ORDERFAST_BASE_IMAGE:-}" ]; then
    base=$ORDERFAST_BASE_IMAGE
    pull=missing
else
    base=$(build_base)
    pull=never
fi

# pip and cargo download over HTTPS with the host's CA bundle, mounted over the base's for the
# build's RUN steps only (never committed to a layer): on a machine behind a TLS-inspecting proxy
# the proxy's CA is there, and nowhere in the image.
volumes=()
ca_bundle=${ORDERFAST_BUILD_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
if [ -s "$ca_bundle" ]; then
    volumes+=(--volume "$ca_bundle:/etc/ssl/certs/ca-certificates.crt:ro")
fi

build() {  # build [podman build options]: the Dockerfile on $base
    podman --cgroup-manager=cgroupfs build --isolation=chroot "${volumes[@]}" --pull="$pull" --layers \
        --build-arg BASE_IMAGE="$base" --build-arg BUILDER_IMAGE="$base" --build-arg EXTRAS="$EXTRAS" \
        --file Dockerfile "$@" .
}

log "podman build $IMAGE on $base${EXTRAS:+ with extras $EXTRAS}"
start=$(date +%s)
# Each stage is tagged, so that the pruning below keeps this build's cache (the Rust toolchain, the
# compiled core, the dependencies) and drops only what earlier builds left behind. The stages that
# differ with the extras are tagged per set of extras, so building one variant keeps the other's.
for stage in build venv strip; do
    suffix=""
    [ "$stage" = build ] || suffix=${EXTRAS:+-${EXTRAS//,/-}}
    build --target "$stage" --tag "localhost/orderfast-stage:$stage$suffix"
done
build --tag "$IMAGE"
log "built $IMAGE in $(($(date +%s) - start)) s"
podman image prune --force >/dev/null

size=$(podman image inspect --format '{{.Size}}' "$IMAGE")
echo "$IMAGE $((size / 1000000)) MB"
