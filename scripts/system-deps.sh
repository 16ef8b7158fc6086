#!/usr/bin/env bash
# Debian packages the desktop and systemd tests drive for real. Installs what is missing when run
# as root (CI, fresh machines); otherwise prints the apt-get line to run and carries on.
set -euo pipefail
need=()
have() { command -v "$1" >/dev/null 2>&1; }
have Xvfb || need+=(xvfb)
have feh || need+=(feh)
have xwd || need+=(x11-apps)
have xrandr || need+=(x11-xserver-utils)
have gsettings || need+=(libglib2.0-bin)
[ -d /usr/share/glib-2.0/schemas ] && ls /usr/share/glib-2.0/schemas/org.gnome.desktop.background.gschema.xml >/dev/null 2>&1 || need+=(gsettings-desktop-schemas)
have systemd-analyze || need+=(systemd)
have notify-send || need+=(libnotify-bin)
have dunst || need+=(dunst)
have dbus-daemon || need+=(dbus-daemon)
# the skip conditions: a real window's fullscreen state (xprop, xmessage, xwininfo), a ScreenSaver service
have xprop && have xmessage && have xwininfo || need+=(x11-utils)
/usr/bin/python3 -c 'import gi' >/dev/null 2>&1 || need+=(python3-gi)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -eq 0 ]; then
  echo "system-deps: installing ${need[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
else
  echo "system-deps: missing ${need[*]}; run: sudo apt-get install ${need[*]}" >&2
fi
