#!/usr/bin/env bash
# Builds the Debian package: target/debian/certvigil_<version>-1_<arch>.deb.
#
#   packaging/deb/build.sh [--force]
#
# 1. installs cargo-deb (pinned) when it is missing or another version;
# 2. builds the release binary (`cargo build --release --locked`; a no-op when up to date);
# 3. generates the man pages (gzipped with -n, so the same binary gives the same bytes) and the
#    bash/zsh/fish completions with that binary into target/assets/;
# 4. runs `cargo deb --no-build` with the [package.metadata.deb] section of Cargo.toml, which
#    also picks up packaging/systemd/certvigil.{service,sysusers} and packaging/deb/post{inst,rm}.
# Steps 3 and 4 are skipped when the .deb is newer than everything it is made from, so a rerun
# costs one up-to-date cargo build. --force rebuilds the .deb anyway.
set -euo pipefail
cd "$(dirname "$0")/../.."

CARGO_DEB_VERSION=3.8.0
force=false
[ "${1:-}" = --force ] && force=true

log() { echo "[deb] $*" >&2; }

if [ "$(cargo deb --version 2>/dev/null || true)" != "cargo-deb $CARGO_DEB_VERSION" ]; then
  log "installing cargo-deb $CARGO_DEB_VERSION"
  cargo install cargo-deb --version "$CARGO_DEB_VERSION" --locked --quiet
fi
# cargo-deb strips the binary with strip(1) and computes dependencies with dpkg-shlibdeps when
# it is there (falling back to ldd); binutils is all it needs besides dpkg.
if ! command -v strip >/dev/null 2>&1; then
  log "installing: binutils"
  if [ "$(id -u)" = 0 ]; then SUDO=(); else SUDO=(sudo); fi
  "${SUDO[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y -qq --no-install-recommends binutils >/dev/null
fi

cargo build --release --locked --bin certvigil

target_dir=${CARGO_TARGET_DIR:-target}
bin=$target_dir/release/certvigil
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n1)
arch=$(dpkg --print-architecture)
deb=target/debian/certvigil_${version}-1_${arch}.deb

# Up to date: the .deb is newer than the binary and every file that goes into it.
if ! $force && [ -f "$deb" ] &&
  [ -z "$(find "$bin" Cargo.toml README.md config/certvigil.yaml schema/config.schema.json packaging \
    -newer "$deb" -print -quit)" ]; then
  log "up to date: $deb"
  exit 0
fi

# Generated assets, made afresh so a removed subcommand leaves no stale page behind.
assets=target/assets
rm -rf "$assets.tmp"
mkdir -p "$assets.tmp/man" "$assets.tmp/completions"
"$bin" generate man --out "$assets.tmp/man"
"$bin" generate completions --out "$assets.tmp/completions"
gzip -9 -n "$assets.tmp"/man/*.1
for f in certvigil.1.gz certvigil.bash _certvigil certvigil.fish; do
  if [ ! -s "$assets.tmp/man/$f" ] && [ ! -s "$assets.tmp/completions/$f" ]; then
    echo "[deb] $bin generate did not write $f" >&2
    exit 1
  fi
done
rm -rf "$assets"
mv "$assets.tmp" "$assets"

# --no-build: the binary above is the one packaged (cargo-deb maps target/release/ in the asset
# list to $CARGO_TARGET_DIR). --strip: the release profile keeps line tables for backtraces;
# the package ships the stripped binary (14 MB instead of 78 MB).
rm -f "$deb"
cargo deb --no-build --locked --strip --no-dbgsym --no-separate-debug-symbols --output "$deb"
log "built $deb"
