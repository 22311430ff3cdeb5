# Environment for `cargo build --features cuda` on a machine without a GPU.
#
# Source it (bash):  . scripts/cuda_env.sh INSTALL_DIR [COMPUTE_CAP]
#
# INSTALL_DIR holds NVIDIA's CUDA 13 wheels from PyPI, installed with
#   pip install --no-deps --target INSTALL_DIR \
#     nvidia-cuda-nvcc==13.0.88 nvidia-cuda-crt==13.0.88 nvidia-nvvm==13.0.88 \
#     nvidia-cuda-runtime==13.0.96 nvidia-cuda-cccl==13.0.85 \
#     nvidia-cublas==13.0.2.14 nvidia-curand==10.4.0.35 nvidia-cuda-nvrtc==13.0.88
# (one pip call: a second `--target` install into the same folder replaces its
# nvidia/ tree). COMPUTE_CAP defaults to 90 (H100/H200).
#
# Candle's cudarc links libcuda, libcublas, libcublasLt, libcurand, libnvrtc and
# (through candle-kernels) libcudart at build time, and runs nvcc. The wheels
# ship only versioned libraries (libcublas.so.13) and no libcuda at all, which
# belongs to the driver. So this script makes INSTALL_DIR/cuda-root, a CUDA
# root the build can point at:
#   lib/        unversioned symlinks (libcublas.so -> .../libcublas.so.13)
#   lib/stubs/  libcuda.so, a stub built here from the wheel's cuda.h: it exports
#               every driver function cuda.h declares (empty bodies), with the
#               soname libcuda.so.1, so the binary records the driver's library
#               and the real one is loaded where the binary runs.
# Nothing of the stub runs: at run time the GPU machine's driver libcuda.so.1
# and its CUDA 13 libraries (LD_LIBRARY_PATH) are used.

cuda_env_main() {
    local install_dir="$1"
    local compute_cap="${2:-90}"
    if [ -z "$install_dir" ] || [ ! -d "$install_dir" ]; then
        echo "usage: . scripts/cuda_env.sh INSTALL_DIR [COMPUTE_CAP]" >&2
        return 1
    fi
    install_dir="$(cd "$install_dir" && pwd)"

    # The wheels' toolkit: CUDA 13 wheels put everything under nvidia/cu13.
    local cu
    cu="$(dirname "$(dirname "$(find -L "$install_dir/nvidia" -path '*/bin/nvcc' -type f | head -n 1)")")"
    if [ ! -x "$cu/bin/nvcc" ]; then
        echo "cuda_env.sh: no bin/nvcc under $install_dir/nvidia (install nvidia-cuda-nvcc)" >&2
        return 1
    fi
    if [ ! -f "$cu/include/cuda.h" ]; then
        echo "cuda_env.sh: no include/cuda.h under $cu (install nvidia-cuda-runtime)" >&2
        return 1
    fi

    local root="$install_dir/cuda-root"
    mkdir -p "$root/lib/stubs"
    ln -sfn "$cu/bin" "$root/bin"
    ln -sfn "$cu/include" "$root/include"
    ln -sfn "$cu/nvvm" "$root/nvvm"

    # Unversioned names for the linker (-lcublas looks for libcublas.so).
    local lib so base
    for lib in cudart cublas cublasLt curand nvrtc; do
        so="$(find -L "$install_dir/nvidia" -name "lib$lib.so.[0-9]*" ! -name '*alt*' | sort | head -n 1)"
        if [ -z "$so" ]; then
            echo "cuda_env.sh: lib$lib.so.* not found under $install_dir/nvidia" >&2
            return 1
        fi
        ln -sfn "$so" "$root/lib/lib$lib.so"
        base="$(basename "$so")"
        ln -sfn "$so" "$root/lib/$base"
    done

    # libcuda stub, built once from the driver API header.
    if [ ! -f "$root/lib/stubs/libcuda.so" ]; then
        local src="$root/lib/stubs/libcuda_stub.c"
        # After preprocessing, cuda.h's #define aliases are applied, so the
        # names are the ones the driver exports (cuMemAlloc_v2, ...).
        if ! ${CC:-cc} -E -P -I"$cu/include" -x c "$cu/include/cuda.h" \
            | grep -oE '\bcu[A-Z][A-Za-z0-9_]*[[:space:]]*\(' \
            | tr -d ' (\t' | sort -u \
            | sed 's/.*/void &(void) {}/' > "$src"; then
            echo "cuda_env.sh: could not preprocess $cu/include/cuda.h" >&2
            return 1
        fi
        if ! ${CC:-cc} -shared -fPIC -o "$root/lib/stubs/libcuda.so" \
            -Wl,-soname,libcuda.so.1 "$src"; then
            echo "cuda_env.sh: could not build the libcuda stub" >&2
            return 1
        fi
    fi

    export CUDA_ROOT="$root" CUDA_PATH="$root" CUDA_HOME="$root"
    export CUDA_COMPUTE_CAP="$compute_cap"
    export PATH="$root/bin:$PATH"
    export LIBRARY_PATH="$root/lib:$root/lib/stubs${LIBRARY_PATH:+:$LIBRARY_PATH}"
    echo "cuda_env.sh: CUDA_ROOT=$root CUDA_COMPUTE_CAP=$compute_cap ($("$root/bin/nvcc" --version | grep -o 'release [0-9.]*'))"
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    echo "cuda_env.sh: source it (. scripts/cuda_env.sh INSTALL_DIR [COMPUTE_CAP]) so the exports stay" >&2
    exit 1
fi
cuda_env_main "$@"
