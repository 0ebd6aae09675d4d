#!/usr/bin/env bash
# Runs every test Hearth has, on a fresh Debian machine or a developer's:
#   - tidy checks (rustfmt, clippy with warnings denied, crate docs),
#   - the Rust unit and integration tests on SQLite, then again on PostgreSQL,
#   - the real-client suite (PyPI cloudfoundry-client) on SQLite and PostgreSQL.
# As root it installs and starts what the tests need (Debian packages listed below,
# Python packages from PyPI); otherwise it expects them to be there.
set -euo pipefail
cd "$(dirname "$0")/.."

PG_URL="${HEARTH_PG_ADMIN_URL:-postgres://postgres:postgres@127.0.0.1:5432/postgres}"

step() { printf '\n==> %s\n' "$*"; }

# Debian packages the tests use: PostgreSQL (the store on PostgreSQL), a registry and
# busybox (image pulls and root filesystems), htpasswd/openssl (registry auth), libseccomp
# (the container runtime's seccomp filter), e2fsprogs (mkfs.ext4 for root filesystems' disk limits),
# nftables and iproute2 (container networking: the runtime runs `nft`; the tests use `ip` and
# util-linux's `nsenter`), nodejs and python3-pip (the built-in nodejs and python buildpacks
# run on the host stack's node, python3 and pip), uidmap and passt (rootless containers:
# newuidmap/newgidmap write a user's subordinate ids, pasta is their user-mode network).
PACKAGES="postgresql docker-registry busybox-static apache2-utils openssl libseccomp-dev pkg-config e2fsprogs nftables iproute2 nodejs python3-pip uidmap passt"

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    missing=$(for p in $PACKAGES; do dpkg -s "$p" >/dev/null 2>&1 || echo "$p"; done)
    if [ -n "$missing" ]; then
        step "installing" $missing
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
    fi
    step "starting PostgreSQL"
    ver=$(ls /usr/lib/postgresql | sort -n | tail -1)
    [ -d "/etc/postgresql/$ver/main" ] || pg_createcluster "$ver" main >/dev/null
    pg_ctlcluster "$ver" main start 2>/dev/null || true
    for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 && break; sleep 1; done
    su postgres -c "psql -q -c \"ALTER USER postgres PASSWORD 'postgres'\"" >/dev/null
fi

# The Python test client, and moto: the S3-compatible server the blobstore tests start themselves.
step "installing the Python test client and moto"
python3 -m pip install -q -r tests/python/requirements.txt

step "tidy: rustfmt and clippy"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --quiet -- -D warnings

step "Rust tests on SQLite"
cargo test --workspace --quiet 2>&1 | tee /tmp/hearth-rust-sqlite.log

step "Rust store and API tests on PostgreSQL"
HEARTH_TEST_DATABASE_URL="$PG_URL" cargo test --quiet -p hearth-store -p hearth-scheduler -p hearth 2>&1 | tee /tmp/hearth-rust-pg.log

step "cloudfoundry-client suite on SQLite"
cargo build --quiet -p hearth
python3 -m pytest tests/python -q 2>&1 | tee /tmp/hearth-py-sqlite.log

step "cloudfoundry-client suite on PostgreSQL"
db="hearth_py_$$"
su postgres -c "psql -q -c 'CREATE DATABASE $db'" 2>/dev/null || psql "$PG_URL" -q -c "CREATE DATABASE $db"
HEARTH_TEST_DATABASE_URL="${PG_URL%/*}/$db" python3 -m pytest tests/python -q 2>&1 | tee /tmp/hearth-py-pg.log

passed=0
for f in /tmp/hearth-rust-sqlite.log /tmp/hearth-rust-pg.log; do
    n=$(grep -Eo '[0-9]+ passed' "$f" | awk '{s+=$1} END {print s+0}')
    passed=$((passed + n))
done
for f in /tmp/hearth-py-sqlite.log /tmp/hearth-py-pg.log; do
    n=$(grep -Eo '[0-9]+ passed' "$f" | tail -1 | awk '{print $1+0}')
    passed=$((passed + n))
done
echo
echo "$passed passed, 0 failed"
