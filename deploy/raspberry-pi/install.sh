#!/usr/bin/env bash
# Installs Tributary's edge broker as a systemd service from a release bundle made by
# build-bundle.sh (a folder holding bin/, dist/, node_modules/ and, optionally, a node binary).
# Usage (as root, on the device): ./install.sh /path/to/tributary-bundle
set -euo pipefail
bundle=${1:?usage: install.sh BUNDLE_DIR}
[ -x "$bundle/bin/tributary" ] || { echo "install.sh: $bundle is not a Tributary bundle (no bin/tributary)" >&2; exit 2; }
id tributary >/dev/null 2>&1 || useradd --system --home /var/lib/tributary --shell /usr/sbin/nologin tributary
rm -rf /opt/tributary.new
cp -a "$bundle" /opt/tributary.new
rm -rf /opt/tributary.old
[ -d /opt/tributary ] && mv /opt/tributary /opt/tributary.old
mv /opt/tributary.new /opt/tributary
install -d -m 0755 /etc/tributary
# Never overwrite an operator's configuration.
[ -f /etc/tributary/edge.yaml ] || install -m 0644 "$(dirname "$0")/edge.yaml" /etc/tributary/edge.yaml
install -m 0644 "$(dirname "$0")/tributary-edge.service" /etc/systemd/system/tributary-edge.service
# Refuse to start a service whose configuration does not load.
/opt/tributary/bin/tributary edge --config /etc/tributary/edge.yaml --check-config
systemctl daemon-reload
systemctl enable --now tributary-edge.service
echo "tributary-edge installed; logs: journalctl -u tributary-edge -f"
