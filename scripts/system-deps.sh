#!/usr/bin/env bash
# Install the system packages the project needs, only those missing, on Debian.
set -euo pipefail
SUDO=""
[ "$(id -u)" = 0 ] || SUDO=sudo
missing=()
command -v ffmpeg >/dev/null && command -v ffprobe >/dev/null || missing+=(ffmpeg)
if ! command -v pg_ctl >/dev/null && ! ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1; then
  missing+=(postgresql)
fi
command -v node >/dev/null || missing+=(nodejs npm)
# the e2e test that plays HLS in a real browser (hls.js in headless Chromium)
command -v chromium >/dev/null || missing+=(chromium)
# the worker image and the base images (no Docker daemon needed: podman with runc, debootstrap)
for tool in podman runc buildah debootstrap; do
  command -v "$tool" >/dev/null || missing+=("$tool")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing system packages: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# A cluster created by the Debian package is not ours; the project starts its own servers.
