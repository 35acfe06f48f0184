#!/usr/bin/env bash
# Build an offline base image without Docker Hub: a minimal Debian or Ubuntu with python3, made
# by debootstrap from the distribution's mirror and imported as an image (about a minute).
# Usage: scripts/base-image.sh [IMAGE [SUITE]]   (default yunpipe/base:bookworm bookworm;
#        MIRROR=http://... to use another mirror)
# The tests' old-Python bases: bullseye (Debian 11, python3.9), focal (Ubuntu 20.04, python3.8),
# bionic (Ubuntu 18.04: python3 is 3.6, and python3.7 from universe is installed next to it).
set -euo pipefail

IMAGE=${1:-yunpipe/base:bookworm}
SUITE=${2:-bookworm}
# Debian's bookworm ships no Ubuntu keyring: Ubuntu's own package brings it, checked against the
# SHA-256 that focal's Packages index gives for it, so only Ubuntu's archive keys are trusted.
UBUNTU_KEYRING_DEB=pool/main/u/ubuntu-keyring/ubuntu-keyring_2020.02.11.2_all.deb
UBUNTU_KEYRING_SHA256=7564f3f76fbc9f165ecc30e2cf2695d38b284e234bffa0c6441ff37f8a7aebd7

if docker image inspect "$IMAGE" >/dev/null 2>&1; then
    echo "$IMAGE already exists"
    exit 0
fi

root=$(mktemp -d /var/tmp/yunpipe-base.XXXXXX)
work=$(mktemp -d /var/tmp/yunpipe-base-keyring.XXXXXX)
# --one-file-system: never follow a /proc or /sys that a failed debootstrap left mounted.
trap 'rm -rf --one-file-system "$root" "$work"' EXIT

options=()
packages=python3
case "$SUITE" in
    focal|bionic)
        mirror=${MIRROR:-http://archive.ubuntu.com/ubuntu}
        wget -q -O "$work/keyring.deb" "$mirror/$UBUNTU_KEYRING_DEB"  # debootstrap depends on wget
        echo "$UBUNTU_KEYRING_SHA256  $work/keyring.deb" | sha256sum --check --quiet
        dpkg-deb -x "$work/keyring.deb" "$work/deb"
        options+=(--keyring "$work/deb/usr/share/keyrings/ubuntu-archive-keyring.gpg")
        if [ "$SUITE" = bionic ]; then
            options+=(--components=main,universe)
            packages=python3,python3.7
        fi
        ;;
    *) mirror=${MIRROR:-} ;;
esac

echo "debootstrap $SUITE into $root"
debootstrap --variant=minbase --include="$packages" "${options[@]}" "$SUITE" "$root" ${mirror:+"$mirror"}
# Package lists and caches only make the image bigger.
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb
tar -C "$root" -c . | docker import --change 'CMD ["bash"]' - "$IMAGE"
echo "built $IMAGE"
