#!/usr/bin/env bash
# Build the clv-platform image from ../../Dockerfile (`make image`; tests/e2e/test_image.py runs it).
#
#   infra/image/build.sh                 # build localhost/clv-platform:latest
#   infra/image/build.sh prerequisites   # only install podman & co and configure it (podman only)
#
# With a working Docker engine (`docker info` answers) it builds on the official python:3.11-slim.
# Otherwise, as on machines with no Docker engine and no registry of base images, with podman on a
# base made from Debian's own packages:
#   1. podman, runc, debootstrap and uidmap from apt when missing, and the containers.conf setting
#      `default_ulimits = []` (podman's default ulimits exceed these machines' hard limits);
#   2. once: `debootstrap --variant=minbase bookworm` imported as localhost/debian-base:bookworm;
#   3. localhost/clv-python:3.11 from python.Containerfile (layer cache: instant when unchanged);
#   4. the image, with --build-arg BASE_IMAGE=localhost/clv-python:3.11.
# Podman runs with `--runtime runc` (crun refuses hybrid cgroups) and `--network host` (reaches
# the package registries). The host's CA bundle is passed as a build secret, never baked in.
#
# Environment: CLV_IMAGE (the tag, default localhost/clv-platform:latest), CLV_IMAGE_ENGINE
# (auto | docker | podman, default auto), CLV_CA_BUNDLE (default the Debian bundle).
set -euo pipefail
cd "$(dirname "$0")/../.."

IMAGE="${CLV_IMAGE:-localhost/clv-platform:latest}"
ENGINE="${CLV_IMAGE_ENGINE:-auto}"
CA_BUNDLE="${CLV_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}"
DEBIAN_BASE=localhost/debian-base:bookworm
PYTHON_BASE=localhost/clv-python:3.11
CONTAINERS_CONF=/etc/containers/containers.conf

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

secret_args=()
if [[ -s "$CA_BUNDLE" ]]; then
    secret_args=(--secret "id=ca-bundle,src=$CA_BUNDLE")
fi

install_podman() {
    local missing=()
    command -v podman >/dev/null 2>&1 || missing+=(podman)
    command -v runc >/dev/null 2>&1 || missing+=(runc)
    command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
    command -v newuidmap >/dev/null 2>&1 || missing+=(uidmap)
    if ((${#missing[@]})); then
        command -v apt-get >/dev/null 2>&1 ||
            die "${missing[*]} missing and apt-get is not available: install them by hand"
        ((EUID == 0)) || die "${missing[*]} missing: run as root to install them with apt-get"
        log "installing ${missing[*]} with apt-get"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            podman runc debootstrap uidmap
    fi
    if ! grep -qs '^[[:space:]]*default_ulimits[[:space:]]*=' "$CONTAINERS_CONF"; then
        ((EUID == 0)) || die "$CONTAINERS_CONF needs 'default_ulimits = []' under [containers]: run as root"
        log "setting default_ulimits = [] in $CONTAINERS_CONF"
        mkdir -p "$(dirname "$CONTAINERS_CONF")"
        if grep -qs '^\[containers\]' "$CONTAINERS_CONF"; then
            sed -i '/^\[containers\]/a default_ulimits = []' "$CONTAINERS_CONF"
        else
            printf '[containers]\ndefault_ulimits = []\n' >>"$CONTAINERS_CONF"
        fi
    fi
}

pman() { podman --runtime runc "$@"; }

build_debian_base() {
    pman image exists "$DEBIAN_BASE" && return
    local root
    root="$(mktemp -d /var/tmp/clv-debootstrap.XXXXXX)"
    # shellcheck disable=SC2064  # expand now: $root is local
    trap "rm -rf '$root'" EXIT
    log "debootstrap --variant=minbase bookworm (once; about 30 s)"
    debootstrap --variant=minbase bookworm "$root" http://deb.debian.org/debian >/dev/null
    tar -C "$root" -c . | pman import - "$DEBIAN_BASE" >/dev/null
    rm -rf "$root"
    trap - EXIT
}

build_with_podman() {
    install_podman
    build_debian_base
    log "building $PYTHON_BASE"
    pman build --network host --tag "$PYTHON_BASE" --file infra/image/python.Containerfile infra/image
    log "building $IMAGE on $PYTHON_BASE"
    # docker format: OCI images have no HEALTHCHECK.
    pman build --format docker --network host "${secret_args[@]}" \
        --build-arg "BASE_IMAGE=$PYTHON_BASE" --tag "$IMAGE" --file Dockerfile .
}

build_with_docker() {
    log "building $IMAGE with Docker on python:3.11-slim"
    DOCKER_BUILDKIT=1 docker build "${secret_args[@]}" --tag "$IMAGE" --file Dockerfile .
}

docker_works() { command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; }

case "${1:-build}" in
    prerequisites)
        install_podman
        pman info >/dev/null
        ;;
    build)
        case "$ENGINE" in
            docker) build_with_docker ;;
            podman) build_with_podman ;;
            auto) if docker_works; then build_with_docker; else build_with_podman; fi ;;
            *) die "CLV_IMAGE_ENGINE must be auto, docker or podman, not '$ENGINE'" ;;
        esac
        log "built $IMAGE"
        ;;
    *) die "usage: $0 [build|prerequisites]" ;;
esac
