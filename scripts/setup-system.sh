#!/usr/bin/env bash
# Install the system packages hotline needs on Debian 12 / Ubuntu, idempotently.
# A second run with everything present does no apt work at all and returns in
# well under a second.
#
# Asterisk: Debian 12 has no asterisk package. The previous release (bullseye)
# ships Asterisk 16 which installs cleanly on bookworm; we add that suite on the
# same mirror URI the machine already uses, pinned low (100) so that only
# Asterisk and the two libraries bookworm lacks come from it.
set -euo pipefail

# chromium and a CJK font: the browser tests of the Chinese web pages.
need_pkgs=(sip-tester postgresql redis-server ffmpeg sox espeak-ng chromium fonts-wqy-microhei)
bins=(asterisk sipp /usr/lib/postgresql/15/bin/initdb redis-server ffmpeg sox espeak-ng chromium)

have_all() {
  local b
  for b in "${bins[@]}"; do
    if [[ "$b" == /* ]]; then
      compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || return 1
    else
      command -v "$b" >/dev/null 2>&1 || [[ -x "/usr/sbin/$b" ]] || return 1
    fi
  done
  [[ -d /usr/lib/asterisk/modules || -d /usr/lib/x86_64-linux-gnu/asterisk/modules ]] || return 1
  [[ -f /usr/share/fonts/truetype/wqy/wqy-microhei.ttc ]] || return 1
  return 0
}

if have_all; then
  exit 0
fi

SUDO=""
if [[ $(id -u) -ne 0 ]]; then
  command -v sudo >/dev/null || { echo "setup-system: need root or sudo to install packages" >&2; exit 1; }
  SUDO="sudo"
fi

export DEBIAN_FRONTEND=noninteractive

# The first deb URI the machine uses for its own distribution (not security,
# not third-party repositories).
mirror_uri() {
  local uri=""
  if [[ -f /etc/apt/sources.list ]]; then
    uri=$(awk '$1=="deb" && $0 !~ /security/ {for(i=2;i<=NF;i++) if ($i ~ /^(https?|file|mirror|ftp):/) {print $i; exit}}' /etc/apt/sources.list)
  fi
  if [[ -z "$uri" ]]; then
    local f
    for f in /etc/apt/sources.list.d/*.sources; do
      [[ -f "$f" ]] || continue
      uri=$(awk 'BEGIN{RS=""} /Suites:[^\n]*(bookworm|jammy|noble|bullseye|trixie)/ && !/security/ {
               if (match($0, /URIs:[ \t]*[^ \t\n]+/)) {s=substr($0,RSTART,RLENGTH); sub(/URIs:[ \t]*/,"",s); print s; exit}}' "$f")
      [[ -n "$uri" ]] && break
    done
  fi
  echo "$uri"
}

os_id=$(. /etc/os-release && echo "${ID:-debian}")
codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")

if ! command -v asterisk >/dev/null 2>&1 && ! [[ -x /usr/sbin/asterisk ]]; then
  if ! apt-cache policy asterisk 2>/dev/null | grep -q 'Candidate: [0-9]'; then
    if [[ "$os_id" == debian ]]; then
      uri=$(mirror_uri)
      if [[ -z "$uri" ]]; then
        echo "setup-system: could not find the Debian mirror URI in /etc/apt/sources.list or /etc/apt/sources.list.d/*.sources;" >&2
        echo "  add a bullseye source for asterisk by hand (see README, 'Asterisk on Debian 12')." >&2
        exit 1
      fi
      echo "setup-system: adding bullseye suite from $uri for asterisk (pinned at 100)"
      $SUDO tee /etc/apt/sources.list.d/hotline-bullseye.list >/dev/null <<SRC
deb $uri bullseye main
SRC
      $SUDO tee /etc/apt/preferences.d/hotline-bullseye >/dev/null <<PIN
Package: *
Pin: release n=bullseye
Pin-Priority: 100
PIN
    fi
  fi
fi

echo "setup-system: apt-get update"
$SUDO apt-get update -qq -o Acquire::Retries=3
pkgs=("${need_pkgs[@]}")
if ! command -v asterisk >/dev/null 2>&1 && ! [[ -x /usr/sbin/asterisk ]]; then
  pkgs+=(asterisk asterisk-modules)
fi
echo "setup-system: installing ${pkgs[*]}"
$SUDO apt-get install -y -qq --no-install-recommends -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "${pkgs[@]}" >/dev/null

# The distribution's own asterisk service is not ours: the private stack
# starts Asterisk from its own config directory. Keep the system one stopped.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet asterisk 2>/dev/null; then
  $SUDO systemctl stop asterisk || true
  $SUDO systemctl disable asterisk || true
fi
pgrep -x asterisk >/dev/null && [[ -f /var/run/asterisk/asterisk.pid ]] && $SUDO /usr/sbin/asterisk -rx "core stop now" >/dev/null 2>&1 || true

have_all || { echo "setup-system: some packages did not install; see apt output above" >&2; exit 1; }
echo "setup-system: done"
