#!/usr/bin/env bash
# Build the Dockerfile on a machine without a Docker engine or a container registry: Debian's buildah builds it,
# from a Debian 12 base image made here with mmdebstrap (the Dockerfile's BASE_IMAGE is that same release).
#
#   docker/build-local.sh [TAG]      (default localhost/streamscribe:dev; as root)
#
# The machine's CA bundle and pip.conf are lent to the build's RUN steps, so a build behind an intercepting proxy
# or through a package mirror works as the machine's own pip does. Needs: apt-get install buildah mmdebstrap.
set -euo pipefail
cd "$(dirname "$0")/.."
TAG="${1:-localhost/streamscribe:dev}"
BASE=localhost/debian:bookworm-slim
STORE=(--storage-driver "${STORAGE_DRIVER:-overlay}")
for tool in buildah mmdebstrap; do
  command -v "$tool" >/dev/null || { echo "$tool is missing: apt-get install buildah mmdebstrap" >&2; exit 1; }
done
if ! buildah "${STORE[@]}" inspect --type image "$BASE" >/dev/null 2>&1; then
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
  mmdebstrap --variant=minbase --include=ca-certificates bookworm "$work/rootfs.tar"
  ctr="$(buildah "${STORE[@]}" from scratch)"
  buildah "${STORE[@]}" add "$ctr" "$work/rootfs.tar" / >/dev/null
  buildah "${STORE[@]}" commit --rm "$ctr" "$BASE" >/dev/null
fi
lend=()
[ -f /etc/ssl/certs/ca-certificates.crt ] && lend+=(-v /etc/ssl/certs/ca-certificates.crt:/etc/ssl/certs/ca-certificates.crt:ro)
[ -f /etc/pip.conf ] && lend+=(-v /etc/pip.conf:/etc/pip.conf:ro)
exec buildah "${STORE[@]}" bud --isolation chroot --layers --format docker --build-arg "BASE_IMAGE=$BASE" \
  "${lend[@]}" -t "$TAG" -f Dockerfile .
