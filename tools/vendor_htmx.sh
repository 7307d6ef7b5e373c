#!/bin/bash
# Vendors htmx's minified script and its licence into the console's static files (committed, so that
# `make up` and `make test` need no npm). Run by `make vendor`; the version is pinned here.
set -euo pipefail
HTMX_VERSION=2.0.11
DEST="$(cd "$(dirname "$0")/.." && pwd)/services/ingress/console/static"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
(cd "$TMP" && npm pack --silent "htmx.org@${HTMX_VERSION}" >/dev/null && tar -xzf htmx.org-${HTMX_VERSION}.tgz)
cp "$TMP/package/dist/htmx.min.js" "$DEST/htmx.min.js"
cp "$TMP/package/LICENSE" "$DEST/htmx.LICENSE"
echo "vendored htmx.org ${HTMX_VERSION} into ${DEST}"
