#!/bin/sh
# Install (or upgrade, or remove) plantmeter as a systemd service on a Linux gateway.
#
#   sudo deploy/install.sh [--binary PATH] [--example NAME]   install or upgrade (idempotent)
#   sudo deploy/install.sh --uninstall [--purge]              remove unit and binary; --purge also
#                                                             deletes /etc/plantmeter, /var/lib/plantmeter
#                                                             and the plantmeter user
#
# Layout:
#   /usr/local/bin/plantmeter                    the agent (static or glibc binary)
#   /etc/systemd/system/plantmeter.service       the unit (local changes: systemctl edit plantmeter)
#   /etc/plantmeter/plantmeter.toml              the config (never overwritten once present)
#   /var/lib/plantmeter/                         the store (sled); survives upgrades and uninstall
#
# DESTDIR=/some/root installs into a staging tree without touching systemd or users (for packaging
# and tests).
set -eu

PREFIX=/usr/local
BIN="$PREFIX/bin/plantmeter"
DOC="$PREFIX/share/doc/plantmeter"
UNIT=/etc/systemd/system/plantmeter.service
CONF_DIR=/etc/plantmeter
CONF="$CONF_DIR/plantmeter.toml"
STATE_DIR=/var/lib/plantmeter
USER_NAME=plantmeter
DESTDIR="${DESTDIR:-}"

here=$(cd "$(dirname "$0")" && pwd)
binary=""
example="power-room"
action=install
purge=no

usage() { sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; }

while [ $# -gt 0 ]; do
  case "$1" in
    --binary) binary="$2"; shift 2 ;;
    --example) example="$2"; shift 2 ;;
    --uninstall) action=uninstall; shift ;;
    --purge) purge=yes; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "install.sh: unknown argument: $1" >&2; usage >&2; exit 2 ;;
  esac
done

live() { [ -z "$DESTDIR" ]; }
have_systemd() { live && [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; }

if live && [ "$(id -u)" -ne 0 ]; then
  echo "install.sh: run as root (sudo), or set DESTDIR for a staging install" >&2
  exit 1
fi

if [ "$action" = uninstall ]; then
  if have_systemd; then
    systemctl disable --now plantmeter.service 2>/dev/null || true
  fi
  rm -f "$DESTDIR$UNIT" "$DESTDIR$BIN"
  rm -rf "$DESTDIR$DOC"
  have_systemd && systemctl daemon-reload
  if [ "$purge" = yes ]; then
    rm -rf "$DESTDIR$CONF_DIR" "$DESTDIR$STATE_DIR"
    if live && id "$USER_NAME" >/dev/null 2>&1; then
      userdel "$USER_NAME" || echo "install.sh: could not remove user $USER_NAME" >&2
    fi
    if live; then
      echo "plantmeter removed, with its config, store and user"
    else
      echo "plantmeter removed from $DESTDIR, with its config and store"
    fi
  else
    echo "plantmeter removed; kept $CONF_DIR and $STATE_DIR (use --purge to delete them)"
  fi
  exit 0
fi

# The binary: --binary, else a release build next to this checkout, else a musl static build.
given=$binary
if [ -z "$binary" ]; then
  for c in "$here/../target/release/plantmeter" \
           "$here/../target/x86_64-unknown-linux-musl/release/plantmeter" \
           "$here/../target/aarch64-unknown-linux-gnu/release/plantmeter" \
           "$here/../target/armv7-unknown-linux-gnueabihf/release/plantmeter"; do
    if [ -x "$c" ]; then binary="$c"; break; fi
  done
fi
if [ -z "$binary" ] || [ ! -x "$binary" ]; then
  echo "install.sh: no plantmeter binary found; build one (cargo build --release -p plantmeter-agent) or pass --binary PATH" >&2
  exit 1
fi
# The gateway build (cargo build --release -p plantmeter-agent) leaves out the demo, the benchmarks
# and the embedded MQTT broker; a workspace build (cargo build --release at the root) has them and is
# not meant for a gateway. Its `demo --help` exits 0; the gateway build's exits 2. (A binary for
# another architecture does not run here and passes.)
if "$binary" demo --help >/dev/null 2>&1; then
  if [ -z "$given" ]; then
    echo "install.sh: $binary is a workspace build with the demo, the benchmarks and an MQTT broker; build the gateway binary (cargo build --release -p plantmeter-agent) or pass --binary PATH" >&2
    exit 1
  fi
  echo "install.sh: warning: $binary has the demo, the benchmarks and an MQTT broker (a workspace build); the gateway build is cargo build --release -p plantmeter-agent" >&2
fi
example_file="$here/examples/$example.toml"
if [ ! -f "$example_file" ]; then
  echo "install.sh: no example config $example_file (choose one of: $(ls "$here/examples" | sed 's/\.toml$//' | tr '\n' ' '))" >&2
  exit 2
fi

# 1. The service user: a system account without a shell or home, in dialout for serial meters.
if live; then
  if ! id "$USER_NAME" >/dev/null 2>&1; then
    useradd --system --user-group --no-create-home --home-dir "$STATE_DIR" \
      --shell /usr/sbin/nologin --comment "plantmeter agent" "$USER_NAME"
  fi
  if getent group dialout >/dev/null 2>&1; then
    usermod -a -G dialout "$USER_NAME"
  fi
fi

# 2. Binary and unit (replaced on upgrade; install -m writes a new file, so a running binary is safe).
install -d -m 0755 "$DESTDIR$PREFIX/bin" "$DESTDIR/etc/systemd/system" "$DESTDIR$DOC"
install -m 0755 "$binary" "$DESTDIR$BIN"
install -m 0644 "$here/systemd/plantmeter.service" "$DESTDIR$UNIT"
install -m 0644 "$here/README.md" "$DESTDIR$DOC/README.md"
install -d -m 0755 "$DESTDIR$DOC/examples"
install -m 0644 "$here"/examples/*.toml "$DESTDIR$DOC/examples/"

# 3. Config (never overwritten) and state directory.
install -d -m 0750 "$DESTDIR$CONF_DIR" "$DESTDIR$STATE_DIR"
if [ ! -e "$DESTDIR$CONF" ]; then
  install -m 0640 "$example_file" "$DESTDIR$CONF"
  config_note="installed $CONF from examples/$example.toml: edit it, then: plantmeter check --config $CONF"
else
  config_note="kept the existing $CONF"
fi
if live; then
  chown root:"$USER_NAME" "$CONF_DIR" "$CONF"
  chown "$USER_NAME":"$USER_NAME" "$STATE_DIR"
fi

# 4. systemd
if have_systemd; then
  systemctl daemon-reload
  systemctl enable plantmeter.service >/dev/null
  if systemctl is-active --quiet plantmeter.service; then
    systemctl restart plantmeter.service
    echo "plantmeter upgraded and restarted (buffered data is kept in $STATE_DIR)"
  else
    echo "plantmeter installed and enabled; start it with: systemctl start plantmeter"
  fi
else
  echo "plantmeter installed into ${DESTDIR:-/} (systemd not running here: not enabled)"
fi
echo "$config_note"
