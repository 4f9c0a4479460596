#!/usr/bin/env bash
# Regenerates docs/configuration.md and the helm values' config section from the *staged* tree (not the working tree, where other
# work in progress may have added options) and stages the result.
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
tmp=$(mktemp -d)
git checkout-index -a --prefix="$tmp/"
ln -s "$PWD/node_modules" "$tmp/node_modules"
node_modules/.bin/node "$tmp/scripts/gen-config-docs.ts"
blob=$(git hash-object -w "$tmp/docs/configuration.md")
git update-index --add --cacheinfo 100644,"$blob",docs/configuration.md
if [ -f "$tmp/scripts/helm-values.ts" ]; then
  (cd "$tmp" && node_modules/.bin/node scripts/helm-values.ts)
  blob=$(git hash-object -w "$tmp/helm/atproto-relay/values.yaml")
  git update-index --add --cacheinfo 100644,"$blob",helm/atproto-relay/values.yaml
fi
rm -rf "$tmp"
