#!/usr/bin/env bash
# Builds Jaeger v2 (one binary: collector, query API and UI, in-memory storage) from its Go module, at the version
# pinned in tools/jaeger/go.mod and checked by tools/jaeger/go.sum, into build/jaeger/<version>/jaeger. The module
# cache and the build cache make a second run take seconds; the first takes several minutes on two cores.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
version="$(awk '$1 == "github.com/jaegertracing/jaeger" {print $2}' "$here/jaeger/go.mod")"
[ -n "$version" ] || { echo "tools/jaeger/go.mod pins no github.com/jaegertracing/jaeger" >&2; exit 1; }
out="$root/build/jaeger/$version"
command -v go >/dev/null 2>&1 || { echo "needs the go command (Debian: golang-go; or https://go.dev/dl)" >&2; exit 1; }
if [ -x "$out/jaeger" ]; then echo "$out/jaeger"; exit 0; fi
mkdir -p "$out"
(cd "$here/jaeger" && GOBIN="$out" go install tool)
echo "$out/jaeger"
