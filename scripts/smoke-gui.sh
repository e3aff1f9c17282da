#!/usr/bin/env bash
# Starts the real app in a virtual X display (Xvfb; wgpu renders with Mesa's lavapipe), waits
# for it to draw a number of frames and close by itself, and optionally saves a screenshot.
# Usage: scripts/smoke-gui.sh BINARY [SCREENSHOT.png] [extra app args...]
set -euo pipefail
bin=${1:?binary}
shot=${2:-}
shift $(( $# >= 2 ? 2 : 1 ))
display=:${SMOKE_DISPLAY:-97}
export XDG_RUNTIME_DIR=$(mktemp -d)
chmod 700 "$XDG_RUNTIME_DIR"
Xvfb "$display" -screen 0 1280x800x24 -nolisten tcp >/dev/null 2>&1 &
xvfb=$!
trap 'kill $xvfb 2>/dev/null || true; rm -rf "$XDG_RUNTIME_DIR"' EXIT
for _ in $(seq 50); do
  [ -e "/tmp/.X11-unix/X${display#:}" ] && break
  sleep 0.1
done
export DISPLAY=$display
if [ -n "$shot" ]; then
  "$bin" "$@" &
  app=$!
  sleep "${SMOKE_SHOT_DELAY:-8}"
  import -window root "$shot"
  kill "$app"
  wait "$app" || true
  echo "smoke-gui: screenshot in $shot"
else
  timeout 180 "$bin" --exit-after-frames 60 "$@"
  echo "smoke-gui: the app drew 60 frames and closed cleanly"
fi
