#!/usr/bin/env bash
# A Debian bookworm root filesystem with Python 3.11 (Debian's python3), as a tarball that
# `docker import` turns into the base image of deploy/Dockerfile, for machines that cannot pull
# images (the container test tier). Uses debootstrap (scripts/setup.sh installs it); about 3 min.
#
#   scripts/deploy/base-image.sh TARBALL     # writes TARBALL unless it exists (a cache)
#
# Then: docker import TARBALL songexplorer-base:bookworm
set -euo pipefail

tarball="${1:?usage: base-image.sh TARBALL}"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
[ -s "$tarball" ] && exit 0
command -v debootstrap >/dev/null || { echo "debootstrap not found: apt-get install debootstrap (scripts/setup.sh does)" >&2; exit 1; }
mkdir -p "$(dirname "$tarball")"
rootfs=$(mktemp -d /tmp/songexplorer-rootfs.XXXXXX)
trap 'rm -rf "$rootfs"' EXIT
# minbase + what the image needs: Python 3.11 with venv/pip, certificates, OpenMP for TensorFlow.
debootstrap --variant=minbase --include=python3,python3-venv,python3-pip,ca-certificates,libgomp1 \
    bookworm "$rootfs" "$mirror" >"$rootfs.log" 2>&1 || { tail -n 30 "$rootfs.log" >&2; rm -f "$rootfs.log"; exit 1; }
rm -f "$rootfs.log"
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
tar -C "$rootfs" --numeric-owner -cf "$tarball.tmp" .
mv "$tarball.tmp" "$tarball"
