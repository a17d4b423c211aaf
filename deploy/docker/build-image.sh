#!/usr/bin/env bash
# Builds the zkd container image from this checkout, with no network and no base image:
# the release binaries of zkd and zkcli, stripped, plus exactly the shared libraries `ldd`
# says they load, on `scratch`.
#
#   deploy/docker/build-image.sh [TAG]        (default zkd:latest)
#
# ZKD_BIN_DIR=DIR uses binaries already built there instead of running cargo.
set -euo pipefail
cd "$(dirname "$0")/../.."
tag="${1:-zkd:latest}"

bin_dir="${ZKD_BIN_DIR:-}"
if [ -z "$bin_dir" ]; then
  cargo build --release --locked -q -p zkd -p zkcli
  bin_dir="$(cargo metadata --format-version 1 --no-deps \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/release"
fi

ctx="$(mktemp -d)"
trap 'rm -rf "$ctx"' EXIT
root="$ctx/rootfs"
mkdir -p "$root/usr/bin" "$root/etc" "$root/tmp" "$ctx/dirs"
chmod 1777 "$root/tmp"
for b in zkd zkcli; do
  install -m 0755 "$bin_dir/$b" "$root/usr/bin/$b"
  strip --strip-all "$root/usr/bin/$b"
done

# The dynamic loader and every library the binaries load, at the paths they are loaded from.
for lib in $(for b in zkd zkcli; do ldd "$root/usr/bin/$b"; done \
    | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' | sort -u); do
  mkdir -p "$root$(dirname "$lib")"
  cp -L "$lib" "$root$lib"
done
# A scratch image has no /lib64 symlink: make sure the interpreter's path exists.
interp="$(readelf -l "$root/usr/bin/zkd" | sed -n 's/.*interpreter: \(.*\)]/\1/p')"
[ -e "$root$interp" ] || { mkdir -p "$root$(dirname "$interp")"; cp -L "$interp" "$root$interp"; }

# The zookeeper user (uid/gid 1000, as in the official image) and name resolution through
# /etc/hosts then DNS (Docker's and Kubernetes' service names).
cat > "$root/etc/passwd" <<'PW'
root:x:0:0:root:/root:/sbin/nologin
zookeeper:x:1000:1000:zookeeper:/data:/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin
PW
cat > "$root/etc/group" <<'GR'
root:x:0:
zookeeper:x:1000:
nogroup:x:65534:
GR
echo 'hosts: files dns' > "$root/etc/nsswitch.conf"

# Directories the server writes, owned by the zookeeper user.
mkdir -p "$ctx/dirs/data" "$ctx/dirs/datalog" "$ctx/dirs/logs" "$ctx/dirs/conf"

cp deploy/docker/Dockerfile "$ctx/Dockerfile"
if ! DOCKER_BUILDKIT=0 docker build -t "$tag" "$ctx" >"$ctx/build.log" 2>&1; then
  cat "$ctx/build.log" >&2
  exit 1
fi
size=$(docker image inspect -f '{{.Size}}' "$tag")
echo "built $tag: $(( size / 1024 / 1024 )) MiB ($size bytes)"
