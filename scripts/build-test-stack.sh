#!/usr/bin/env bash
# Builds the Docker image berth's buildpack tests use as their "stack" (the
# base image generated Dockerfiles start FROM), without pulling anything from
# a registry: debootstrap a minimal Debian bookworm from the Debian mirror,
# add the language toolchains, and `docker import` the result.
#
# Does nothing when the image already exists. Must run as root (debootstrap
# and chroot need it) on a Debian machine with a running Docker engine.
#
# Environment:
#   BERTH_TEST_STACK  image to create (default berth/test-stack:bookworm)
#   DEBIAN_MIRROR     Debian mirror (default http://deb.debian.org/debian)
set -euo pipefail

image="${BERTH_TEST_STACK:-berth/test-stack:bookworm}"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
suite=bookworm
packages=golang-go,nodejs,python3,python3-pip,ca-certificates

log() { echo "build-test-stack: $*" >&2; }
die() { log "error: $*"; exit 1; }

command -v docker >/dev/null || die "docker CLI not found; install Docker and start the engine"
docker info >/dev/null 2>&1 || die "cannot reach the Docker engine (is dockerd running, and may this user use it?)"

if docker image inspect "$image" >/dev/null 2>&1; then
	log "$image already exists; nothing to do"
	exit 0
fi

[ "$(id -u)" -eq 0 ] || die "must run as root (debootstrap and chroot need it): sudo $0"

if ! command -v debootstrap >/dev/null; then
	log "installing debootstrap"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
fi

start=$(date +%s)
root=$(mktemp -d /var/tmp/berth-test-stack.XXXXXX)
cleanup() {
	# A failed debootstrap can leave /proc or /sys mounted inside the root.
	for m in proc sys dev/pts dev; do
		mountpoint -q "$root/$m" 2>/dev/null && umount -l "$root/$m" || true
	done
	rm -rf --one-file-system "$root"
}
trap cleanup EXIT

log "debootstrap $suite (minbase + $packages) from $mirror into $root; this takes several minutes"
debootstrap --variant=minbase --include="$packages" "$suite" "$root" "$mirror" >"$root.log" 2>&1 || {
	tail -n 30 "$root.log" >&2
	die "debootstrap failed (full log: $root.log)"
}
rm -f "$root.log"

log "cleaning apt caches and docs"
chroot "$root" apt-get clean
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/log/*.log \
	"$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/tmp/*
# The image's apt sources point at the public mirror, as debian:bookworm's do.
echo "deb $mirror $suite main" >"$root/etc/apt/sources.list"

log "importing into Docker as $image"
tar --numeric-owner -C "$root" -c . |
	docker import \
		--change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
		--change 'CMD ["/bin/bash"]' \
		- "$image" >/dev/null

elapsed=$(($(date +%s) - start))
size=$(docker image inspect --format '{{.Size}}' "$image")
log "built $image in $((elapsed / 60))m$((elapsed % 60))s ($((size / 1024 / 1024)) MiB)"
