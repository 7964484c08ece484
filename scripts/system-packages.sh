#!/usr/bin/env bash
# The Debian packages that rnnkit's bundled data, baselines and browser tests come from.
# One list for `make` (tour, test) and CI. Installs them where this user may (root, or sudo
# without a password); otherwise prints the command and carries on: the sections that need a
# missing package say in the tour's report that they were skipped, and why.
# RNNKIT_STRICT_PACKAGES=1 (CI) turns "could not install" into a failure.
set -u
strict=${RNNKIT_STRICT_PACKAGES:-0}
PACKAGES=(
  sword-text-kjv sword-text-web sword-text-sparv   # Bibles: language model, translation
  apertium-eng-spa                                 # rule-based translator (a baseline)
  espeak-ng flite                                  # speech synthesizers: speech recognition
  pocketsphinx-testdata                            # real recordings (speech fixtures)
  dataset-fashion-mnist                            # real images for captioning
  fluidsynth timgm6mb-soundfont                    # MIDI to audio
  g++                                              # the layer-norm LSTM kernel
  chromium                                         # the browser tests of the web page
)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if ! command -v apt-get >/dev/null; then
  echo "rnnkit: not a Debian/Ubuntu system; without ${missing[*]} some tour sections are skipped" >&2
  exit 0
fi
if [ "$(id -u)" = 0 ]; then
  SUDO=()
elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
  SUDO=(sudo -n)
else
  echo "rnnkit: some tour sections need: sudo apt-get install ${missing[*]}" >&2
  [ "$strict" = 1 ] && exit 1
  exit 0
fi
echo "rnnkit: installing Debian packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -q >/dev/null
if ! "${SUDO[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null; then
  echo "rnnkit: apt-get could not install all of ${missing[*]}; those sections are skipped" >&2
  [ "$strict" = 1 ] && exit 1
fi
exit 0
