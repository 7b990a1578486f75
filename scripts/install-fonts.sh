#!/usr/bin/env bash
# Fonts for the letters data set and OCR (`convnet ocr ...`): Debian packages with
# distinct text typefaces that cover a-z, about 35 MB to download. Left out on purpose:
# symbol, dingbat and script (joined-up) fonts, and packages of near-clones of the ones
# here (TeX Gyre and Croscore copy URW and Liberation). Skips what is already installed.
set -euo pipefail
packages=(
  fonts-dejavu-core fonts-liberation2 fonts-freefont-ttf fonts-urw-base35
  fonts-crosextra-carlito fonts-crosextra-caladea fonts-open-sans fonts-roboto-unhinted
  fonts-linuxlibertine fonts-ebgaramond fonts-cantarell fonts-lato fonts-go
  fonts-comic-neue fonts-inconsolata fonts-quicksand fonts-gfs-didot fonts-sil-gentium
  fonts-stix fonts-hack fonts-anonymous-pro fonts-league-spartan fonts-adf-accanthis
  fonts-adf-gillius fonts-adf-universalis fonts-adf-baskervald fonts-adf-berenis
  fonts-yanone-kaffeesatz fonts-karla fonts-paratype fonts-vollkorn fonts-cabin
  fonts-oldstandard fonts-play fonts-averia-sans-gwf fonts-averia-serif-gwf
  fonts-humor-sans fonts-noto-mono
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
