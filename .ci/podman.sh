#!/usr/bin/env bash
# A Docker-compatible engine for tests/docker.rs on a machine with no Docker engine and no
# registry access: podman's Docker API service (runtime runc: crun refuses hybrid cgroups)
# and an image built offline from the host's own python3.
#
#   eval "$(bash .ci/podman.sh)"
#
# stdout carries only `export DOCKER_HOST=…` and `export RLM_TEST_DOCKER_IMAGE=…`; everything
# else goes to stderr. Idempotent: a service that already answers on the socket is reused and
# an existing image is kept (RLM_PODMAN_REBUILD=1 rebuilds it). The service outlives this
# script (`--time=0`); its pid is in $dir/service.pid.
set -euo pipefail

# The exports go to the caller through fd 3, everything else to stderr.
exec 3>&1 1>&2

dir=${RLM_PODMAN_DIR:-/run/rlm-podman}
sock=$dir/podman.sock
image=localhost/rlm-python:test
started=$(date +%s%N)

# --- Packages ------------------------------------------------------------------------------
# podman depends on `crun | runc`: naming runc keeps apt from choosing crun, which refuses
# this machine's hybrid cgroups. catatonit is podman's init for `docker run --init`.
need=()
command -v podman >/dev/null 2>&1 || need+=(podman)
[ -x /usr/sbin/runc ] || command -v runc >/dev/null 2>&1 || need+=(runc)
[ -x /usr/bin/catatonit ] || [ -x /usr/libexec/podman/catatonit ] || need+=(catatonit)
docker_missing=0
command -v docker >/dev/null 2>&1 || docker_missing=1
if [ ${#need[@]} -gt 0 ] || [ $docker_missing = 1 ]; then
    apt-get update -qq
fi
if [ ${#need[@]} -gt 0 ]; then
    echo "podman.sh: installing ${need[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
if [ $docker_missing = 1 ]; then
    # Debian 12 ships the docker CLI only inside `docker.io`, together with dockerd and
    # containerd, whose postinst tries to start the daemon (and fails without an init
    # system). Only the client is needed: it is taken out of the package unpacked.
    echo "podman.sh: installing the docker CLI from Debian's docker.io package"
    deb=$(mktemp -d)
    (
        trap 'rm -rf "$deb"' EXIT
        cd "$deb"
        apt-get download -qq docker.io 2>/dev/null || apt-get download docker.io
        dpkg-deb --fsys-tarfile docker.io_*.deb | tar -x ./usr/bin/docker
        install -m 0755 usr/bin/docker /usr/local/bin/docker
    )
fi
docker --version

# --- The API service -------------------------------------------------------------------------
mkdir -p "$dir"
chmod 700 "$dir"
conf=$dir/containers.conf
cat >"$conf.new" <<'EOF'
# Written by .ci/podman.sh.
[containers]
# CAP_SYS_RESOURCE is missing here: runc must not try to raise these rlimits (hard NOFILE
# is 20000), so every container gets explicit ones.
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]

[engine]
# crun refuses hybrid cgroups (v1 controllers + an empty cgroup2 at /sys/fs/cgroup/unified).
runtime = "runc"
EOF
mv "$conf.new" "$conf"

answers() {
    timeout 10 docker --host "unix://$sock" version --format '{{.Server.Version}}' >/dev/null 2>&1
}

# A service whose working directory was deleted answers, but cannot run containers.
cwd_deleted() {
    local p
    p=$(cat "$dir/service.pid" 2>/dev/null || true)
    [ -n "$p" ] && readlink "/proc/$p/cwd" 2>/dev/null | grep -q ' (deleted)$'
}

if answers && ! cwd_deleted; then
    echo "podman.sh: reusing the service at unix://$sock"
else
    # A service of ours that no longer answers (checked by its command line: the pid may
    # have been reused since).
    old=$(cat "$dir/service.pid" 2>/dev/null || true)
    if [ -n "$old" ] && tr '\0' ' ' 2>/dev/null <"/proc/$old/cmdline" | grep -qF "system service --time=0 unix://$sock"; then
        kill "$old" 2>/dev/null || true
    fi
    rm -f "$sock"
    # Detached from the caller: no inherited stdout (the caller's `$(…)` would wait for it),
    # its own session, its log in $dir, and `/` as its working directory (conmon, started
    # for every container, inherits it: a checkout deleted after a CI run would make every
    # later `docker run` fail with "409" and "Failed to get working directory").
    (cd / && CONTAINERS_CONF=$conf exec setsid podman system service --time=0 "unix://$sock" \
        </dev/null >"$dir/service.log" 2>&1 3>&-) &
    echo $! >"$dir/service.pid"
    for _ in $(seq 1 100); do
        answers && break
        if ! kill -0 "$(cat "$dir/service.pid")" 2>/dev/null; then
            echo "podman.sh: the service exited:" && cat "$dir/service.log"
            exit 1
        fi
        sleep 0.1
    done
    answers || { echo "podman.sh: no answer on unix://$sock after 10 s:"; cat "$dir/service.log"; exit 1; }
    echo "podman.sh: started the service at unix://$sock (pid $(cat "$dir/service.pid"))"
fi
docker --host "unix://$sock" version --format 'podman.sh: client {{.Client.Version}}, server {{.Server.Version}}, API {{.Server.APIVersion}}'

# --- The offline image -----------------------------------------------------------------------
if [ "${RLM_PODMAN_REBUILD:-0}" = 1 ]; then
    podman image rm -f "$image" >/dev/null 2>&1 || true
fi
if podman image exists "$image"; then
    echo "podman.sh: image $image exists"
else
    echo "podman.sh: building $image from the host's python3"
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    trap 'exit 130' INT TERM
    root=$tmp/rootfs
    # A merged-/usr layout, like the host's.
    # No /work: podman gives a tmpfs over an existing directory that directory's mode, not
    # the requested mode=1777, and the sandbox user could not write its working directory.
    mkdir -p "$root"/usr/{bin,lib,lib64} "$root"/{etc,proc,sys,dev,tmp}
    for l in bin lib lib64 sbin; do ln -s "usr/${l/sbin/bin}" "$root/$l"; done
    chmod 1777 "$root/tmp"
    py=$(readlink -f /usr/bin/python3)
    # The interpreter plus a few tools the sandboxed code may spawn (subprocess tests).
    bins=("$py")
    tools=(sh echo cat ls sleep true env id)
    for b in "${tools[@]}"; do bins+=("$(readlink -f "$(type -P "$b")")"); done
    copy() { # a host file at the same path in the rootfs, symlinks resolved
        install -D -m 0755 "$(readlink -f "$1")" "$root$1"
    }
    for b in "${bins[@]}"; do copy "$b"; done
    for b in "${tools[@]}"; do
        [ -e "$root/usr/bin/$b" ] || ln -s "$(basename "$(readlink -f "$(type -P "$b")")")" "$root/usr/bin/$b"
    done
    ln -sf "$(basename "$py")" "$root/usr/bin/python3"
    # The standard library without its tests and the static libpython (config-3.x-*).
    pylib=$(/usr/bin/python3 -c 'import sysconfig; print(sysconfig.get_paths()["stdlib"])')
    tar -C / --exclude='test' --exclude='tests' --exclude='idle_test' --exclude='config-3.*' \
        -cf - "${pylib#/}" | tar -C "$root" -xf -
    # Every shared library the interpreter, the tools and the extension modules need.
    find "$pylib/lib-dynload" -name '*.so' -print0 | xargs -0 ldd "${bins[@]}" >"$tmp/ldd" 2>/dev/null || true
    awk '/=> \// {print $3} /^\t\/[^ ]+ \(/ {print $1}' "$tmp/ldd" | sort -u >"$tmp/libs"
    while read -r lib; do copy "$lib"; done <"$tmp/libs"
    # Links out of the rootfs (sitecustomize.py -> /etc/…) would dangle in the image.
    find "$root" -type l -lname '/*' -delete
    tar -C "$root" -cf "$tmp/rootfs.tar" .
    podman import --change 'ENV=PATH=/usr/local/bin:/usr/bin:/bin' --change 'ENV=LANG=C.UTF-8' \
        --change 'CMD=["python3"]' "$tmp/rootfs.tar" "$image" >/dev/null
    echo "podman.sh: $image built ($(du -sh "$root" | cut -f1) rootfs)"
fi
DOCKER_HOST=unix://$sock docker run --rm --network none "$image" python3 -c 'import sys; print("podman.sh: image python", sys.version.split()[0])'
echo "podman.sh: ready in $(( ($(date +%s%N) - started) / 1000000 )) ms"

echo "export DOCKER_HOST=unix://$sock" >&3
echo "export RLM_TEST_DOCKER_IMAGE=$image" >&3
