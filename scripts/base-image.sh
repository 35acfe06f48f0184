#!/usr/bin/env bash
# Build the offline base image (default yunpipe/base:bookworm) without Docker Hub: a minimal
# Debian made by debootstrap from the Debian mirror, imported as an image (about 45 s).
# Usage: scripts/base-image.sh [IMAGE]   (MIRROR=http://... to use another Debian mirror)
set -euo pipefail

IMAGE=${1:-yunpipe/base:bookworm}
SUITE=bookworm

if docker image inspect "$IMAGE" >/dev/null 2>&1; then
    echo "$IMAGE already exists"
    exit 0
fi

root=$(mktemp -d /var/tmp/yunpipe-base.XXXXXX)
# --one-file-system: never follow a /proc or /sys that a failed debootstrap left mounted.
trap 'rm -rf --one-file-system "$root"' EXIT

echo "debootstrap $SUITE into $root"
debootstrap --variant=minbase --include=python3 "$SUITE" "$root" ${MIRROR:+"$MIRROR"}
# Package lists and caches only make the image bigger.
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb
tar -C "$root" -c . | docker import --change 'CMD ["bash"]' - "$IMAGE"
echo "built $IMAGE"
