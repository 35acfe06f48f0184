#!/usr/bin/env bash
# Prepare this machine for yunpipe's tests and demo; safe to run again (each step is skipped
# when already done). Meant for a fresh Debian, as root, without Docker Hub or GitHub:
#   .venv with yunpipe installed (editable, with test extras), the Docker engine, debootstrap,
#   a static busybox and Debian's docker-registry, Debian's chromium and chromium-driver (the
#   browser tests), a running dockerd, and the offline base image yunpipe/base:bookworm.
# Usage: scripts/bootstrap.sh            prepare everything
#        scripts/bootstrap.sh --missing  only print the Debian packages it would install
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive

PYTHON=${PYTHON:-python3}
DOCKERD_LOG=/var/log/dockerd.log

# The Debian packages whose programs are missing. Each check names the program that is really
# run: a machine may well have a `docker` client on the PATH and no engine (dockerd) at all.
missing_packages() {
    local missing=()
    command -v dockerd >/dev/null && command -v docker >/dev/null || missing+=(docker.io)
    command -v debootstrap >/dev/null || missing+=(debootstrap)
    # The local registry the tests push wrapped images to (wrap --local).
    command -v docker-registry >/dev/null || missing+=(docker-registry)
    # `yunpipe ui` draws a pipeline's graph with Graphviz's dot.
    command -v dot >/dev/null || missing+=(graphviz)
    # moto's Docker Lambda copies code through a busybox:latest image, which the local cloud
    # builds from the host's busybox; only a statically linked one runs in an empty image.
    local busybox
    busybox=$(command -v busybox || true)
    if [ -z "$busybox" ] || ldd "$busybox" >/dev/null 2>&1; then
        missing+=(busybox-static)
    fi
    # The browser tests open the HTML report in Debian's headless chromium through its driver
    # (Debian's own builds: no download from Google at test time).
    command -v chromium >/dev/null || missing+=(chromium)
    command -v chromedriver >/dev/null || missing+=(chromium-driver)
    # Debian's python3 has venv's ensurepip only with python3-venv.
    if ! command -v "$PYTHON" >/dev/null; then
        missing+=(python3 python3-venv)
    elif ! "$PYTHON" -c 'import ensurepip' 2>/dev/null; then
        missing+=(python3-venv)
    fi
    echo "${missing[@]}"
}

if [ "${1:-}" = "--missing" ]; then
    missing_packages
    exit 0
fi

read -r -a missing <<<"$(missing_packages)"
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "bootstrap: missing ${missing[*]}; run as root or install them" >&2
        exit 1
    fi
    echo "bootstrap: installing ${missing[*]}"
    # Other worktrees may bootstrap at the same time: wait for dpkg's lock instead of failing.
    apt-get -o DPkg::Lock::Timeout=600 update
    apt-get -o DPkg::Lock::Timeout=600 install -y "${missing[@]}"
    hash -r
fi

# The virtualenv; pip runs again only when setup.py changed since the last install (stamp).
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
stamp=.venv/.yunpipe-setup.sha256
wanted=$(sha256sum setup.py | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ] || ! .venv/bin/python -c 'import yunpipe' 2>/dev/null; then
    echo "bootstrap: pip install -e '.[test]'"
    .venv/bin/pip install -e '.[test]'
    echo "$wanted" >"$stamp"
fi

# A Docker daemon: started in the background when none answers (there is no systemd here).
if ! docker info >/dev/null 2>&1; then
    echo "bootstrap: starting dockerd (log: $DOCKERD_LOG)"
    # setsid: the daemon outlives this script, make and the CI step.
    setsid dockerd >>"$DOCKERD_LOG" 2>&1 </dev/null &
    for _ in $(seq 60); do
        docker info >/dev/null 2>&1 && break
        sleep 1
    done
    if ! docker info >/dev/null 2>&1; then
        echo "bootstrap: dockerd did not come up; the end of $DOCKERD_LOG:" >&2
        tail -n 20 "$DOCKERD_LOG" >&2
        exit 1
    fi
fi

scripts/base-image.sh yunpipe/base:bookworm
echo "bootstrap: ready"
