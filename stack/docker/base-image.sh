#!/usr/bin/env bash
# debian:bookworm-slim, the base of every image we build. Pulled when Docker Hub answers; where
# it does not (our machines), made locally with debootstrap from the Debian mirror apt already
# uses and tagged with the same name, so the Dockerfiles are the same everywhere.
. "$(dirname "$0")/../lib.sh"

BASE=debian:bookworm-slim
docker image inspect "$BASE" >/dev/null 2>&1 && exit 0
if timeout 60 docker pull -q "$BASE" >/dev/null 2>&1; then
  log "docker: pulled $BASE"
  exit 0
fi
log "docker: $BASE cannot be pulled (no Docker Hub here): creating it locally with debootstrap"
command -v debootstrap >/dev/null || apt_install debootstrap
mirror="$(sed -n 's/^URIs: *\(http[^ ]*\/debian\)\/\?$/\1/p' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -n1)"
mirror="${mirror:-$(sed -n 's/^deb \[\?[^]]*\]\? *\(http[^ ]*\/debian\)\/\? bookworm .*/\1/p' /etc/apt/sources.list 2>/dev/null | head -n1)}"
mirror="${mirror:-http://deb.debian.org/debian}"
root="$(mktemp -d /var/tmp/campus-rootfs.XXXXXX)"
trap 'rm -rf "$root"' EXIT
start=$SECONDS
debootstrap --variant=minbase bookworm "$root" "$mirror" >"$STACK_DIR/logs/debootstrap.log" 2>&1 ||
  { tail -n 20 "$STACK_DIR/logs/debootstrap.log" >&2; die "docker: debootstrap failed"; }
# What the official slim image adds: the updates and security suites, no docs or man pages,
# no apt cache kept, and no package lists in the image.
rm -f "$root/etc/apt/sources.list"
cat >"$root/etc/apt/sources.list.d/debian.sources" <<SOURCES
Types: deb
URIs: $mirror
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: ${mirror%/debian}/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SOURCES
cat >"$root/etc/dpkg/dpkg.cfg.d/docker" <<'DPKG'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
DPKG
echo 'APT::Install-Recommends "false";' >"$root/etc/apt/apt.conf.d/docker-no-recommends"
cat >"$root/etc/apt/apt.conf.d/docker-clean" <<'APT'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
APT
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb \
  "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/locale/*
tar -C "$root" -c . | docker import -c 'CMD ["bash"]' -c 'ENV LANG=C.UTF-8' - "$BASE" >/dev/null
log "docker: $BASE created locally in $((SECONDS - start))s ($(docker image inspect -f '{{.Size}}' "$BASE" | awk '{printf "%d MB", $1/1e6}'))"
