#!/usr/bin/env bash
# Build the project's image (deploy/Dockerfile) on a machine that cannot pull images: a
# debootstrap'd Debian bookworm base (scripts/deploy/base-image.sh) imported into Docker, and the
# project's wheels fetched here by pip (from its cache/index) so the build itself needs no index.
# The container test tier runs it; docker must reach a daemon (DOCKER_HOST).
#
#   scripts/deploy/build-image.sh TAG [CACHE]    # CACHE (default .cache/deploy): base tarball, wheels
#
# The build uses the host network (`docker build --network host`): the daemon has no bridge.
set -euo pipefail
cd "$(dirname "$0")/../.."
tag="${1:?usage: build-image.sh TAG [CACHE]}"
cache="$(realpath -m "${2:-.cache/deploy}")"
base="songexplorer-base:bookworm"
python="${PYTHON:-.venv/bin/python}"
extras="${EXTRAS:-k8s,docker}"

mkdir -p "$cache/wheels"
stamp() { echo "[$(date +%T)] $*" >&2; }

# the base image (debootstrap, network-bound) and the wheels (pip) are fetched side by side
stamp "base image ($cache/bookworm-python3.tar) and wheels of .[${extras}] ($cache/wheels)"
bash scripts/deploy/base-image.sh "$cache/bookworm-python3.tar" &
base_pid=$!

# --find-links: wheels already in the cache are not fetched again
quiet_pip() {
    if ! "$python" -m pip "$@" >"$cache/pip.log" 2>&1; then
        grep -v "is ignored: it is neither a file nor a directory" "$cache/pip.log" >&2
        kill "$base_pid" 2>/dev/null || true
        exit 1
    fi
}
quiet_pip wheel -q --find-links "$cache/wheels" --wheel-dir "$cache/wheels" ".[${extras}]"
quiet_pip download -q --find-links "$cache/wheels" --only-binary :all: -d "$cache/wheels" "setuptools>=77" wheel pip
rm -f "$cache/wheels"/songexplorer_dagster-*.whl
wait "$base_pid" || { echo "the base image failed" >&2; exit 1; }
if ! docker image inspect "$base" >/dev/null 2>&1; then
    docker import "$cache/bookworm-python3.tar" "$base" >/dev/null
fi

stamp "build context"
context=$(mktemp -d /tmp/songexplorer-image.XXXXXX)
wheel_server=""
cleanup() {
    [ -n "$wheel_server" ] && kill "$wheel_server" 2>/dev/null
    rm -rf "$context"
}
trap cleanup EXIT
# the source as deploy/Dockerfile's COPY sees it (.dockerignore)
tar -C . --exclude-vcs --exclude-from=.dockerignore -cf - . | tar -C "$context" -xf -
# the wheels, served to the build on 127.0.0.1 (host network) rather than copied into a layer
port=$("$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$python" -m http.server --bind 127.0.0.1 --directory "$cache/wheels" "$port" >/dev/null 2>&1 &
wheel_server=$!
for _ in $(seq 1 50); do
    "$python" -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/')" 2>/dev/null && break
    sleep 0.2
done

stamp "docker build $tag"
# --no-compile: no .pyc written at build (a smaller layer, committed faster); Python compiles in memory
docker build --network host -q -f "$context/deploy/Dockerfile" -t "$tag" \
    --build-arg BASE_IMAGE="$base" \
    --build-arg EXTRAS="$extras" \
    --build-arg PIP_INSTALL_OPTIONS="--no-index --find-links http://127.0.0.1:$port/ --no-compile" \
    "$context" >/dev/null
stamp "built $tag"
