#!/bin/bash
# The peers of tests/vagrant/workloads.sh, made on the host (the VM has no network) into
# OUT_DIR, which tests/vagrant/run.sh copies into the box as /opt/fake-metadata-peers:
#   aws_credential_chain  the AWS SDK for Rust's default chain (examples/aws_credential_chain.rs,
#                         a debug build, which the cargo tier's `cargo test --all-targets`
#                         has already made; stripped). The host is Debian bookworm like the
#                         box, so it runs there and, with the box's /usr, in its containers.
#   js/                   the AWS SDK for JavaScript v3's default chain: tests/peers/js/peer.js
#                         and `npm ci` of its package-lock.json (the npm registry), run by the
#                         box's Node.js 18 (Debian).
#   python/               botocore from PyPI (pinned below, --no-deps: the box's Debian
#                         python3-dateutil, -jmespath, -urllib3 serve it), for PYTHONPATH.
#                         Debian bookworm's own python3-botocore 1.29 (and awscli 2.9's) know
#                         the ECS agent's endpoint but not Pod Identity's (no
#                         AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE, 169.254.170.23 refused).
# Each part is remade only when its inputs changed (OUT_DIR/*.stamp).
#
# Usage: tests/peers/build.sh OUT_DIR
set -euo pipefail
OUT=${1:?usage: build.sh OUT_DIR}
HERE=$(cd "$(dirname "$0")" && pwd)
PROJECT=$(cd "$HERE/../.." && pwd)
BOTOCORE=1.43.11
PY_STAMP="botocore==$BOTOCORE, compiled"   # what python/ holds
mkdir -p "$OUT"
OUT=$(realpath "$OUT")
T0=$SECONDS

# Rust: a no-op when the cargo tier built the example (same dev/test profile settings).
(cd "$PROJECT" && cargo build --locked --quiet --example aws_credential_chain)
strip -o "$OUT/aws_credential_chain.new" "$PROJECT/target/debug/examples/aws_credential_chain"
mv "$OUT/aws_credential_chain.new" "$OUT/aws_credential_chain"
echo "rust: $(du -h "$OUT/aws_credential_chain" | cut -f1) ($((SECONDS - T0)) s)"

# JavaScript: npm ci of the committed lock (exact versions and integrity hashes).
key=$(cat "$HERE/js/package.json" "$HERE/js/package-lock.json" | sha256sum | cut -c1-16)
if [ "$(cat "$OUT/js.stamp" 2>/dev/null)" != "$key" ] || [ ! -d "$OUT/js/node_modules" ]; then
    rm -rf "$OUT/js"; mkdir -p "$OUT/js"
    cp "$HERE/js/package.json" "$HERE/js/package-lock.json" "$OUT/js/"
    (cd "$OUT/js" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
    echo "$key" > "$OUT/js.stamp"
fi
cp "$HERE/js/peer.js" "$OUT/js/"
echo "js: $(du -sh "$OUT/js" | cut -f1) ($((SECONDS - T0)) s)"

# Python: botocore from PyPI.
if [ "$(cat "$OUT/python.stamp" 2>/dev/null)" != "$PY_STAMP" ]; then
    rm -rf "$OUT/python"
    python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore \
        --no-deps --target "$OUT/python" "botocore==$BOTOCORE"
    echo "$PY_STAMP" > "$OUT/python.stamp"
fi
echo "python: botocore $BOTOCORE, $(du -sh "$OUT/python" | cut -f1) ($((SECONDS - T0)) s)"
