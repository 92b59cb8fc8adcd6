#!/usr/bin/env bash
# Installs the Debian packages the viewer's tests and preview workers use when they are missing:
# ffmpeg (video posters, fake camera videos), chromium (the AR page in a real browser), faketime
# (libfaketime: the fault suite runs a process with its clock skewed), poppler-utils (pdftoppm: the
# print sheet's tests render its PDF to read the QR code back) and fonts-dejavu-core (DejaVu Sans, the
# print sheet's font with Cyrillic letters).
set -euo pipefail

missing=()
command -v ffmpeg >/dev/null 2>&1 || missing+=(ffmpeg)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v faketime >/dev/null 2>&1 || missing+=(faketime)
command -v pdftoppm >/dev/null 2>&1 || missing+=(poppler-utils)
[ -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || missing+=(fonts-dejavu-core)
[ ${#missing[@]} -eq 0 ] && exit 0

if ! command -v apt-get >/dev/null 2>&1; then
  echo "error: ${missing[*]} missing and apt-get is not available: install them with your package manager" >&2
  exit 1
fi
sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
echo "installing ${missing[*]} from Debian"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
