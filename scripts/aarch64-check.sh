#!/usr/bin/env bash
# Cross-builds the runtime for aarch64-unknown-linux-gnu (Jetson-class ARM),
# runs its tests under qemu-aarch64 on two emulated CPUs, and checks that
# `afr score --raw-maps` gives the x86 result on fp32, fp16 and int8 models.
#
# The cross toolchain comes from a Debian forky chroot (rustc/cargo with
# libstd-rust-dev:arm64, gcc-aarch64-linux-gnu, qemu-user), so the host needs
# no aarch64 Rust target, cross compiler or qemu. The chroot and the cross target dir are
# cached outside the repository, so a second run only rebuilds workspace
# crates. Needs root (debootstrap, chroot, bind mounts).
#
# Usage: scripts/aarch64-check.sh [--chroot-only | --tests-only] [--models DIR]
#   --chroot-only  make (or check) the chroot and stop
#   --tests-only   stop after the emulated runtime tests (no x86 side, no parity)
#   --models DIR   use DIR/model.onnx, model.fp16.onnx, model.int8.onnx and
#                  DIR/data (afr-toolchain synth layout) instead of training a
#                  tiny model here
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

cache=${XDG_CACHE_HOME:-$HOME/.cache}/afr-clip/aarch64
chroot_dir=$cache/chroot-forky
suite=forky
mirror=${AFR_DEBIAN_MIRROR:-http://deb.debian.org/debian}
chroot_packages="rustc cargo libstd-rust-dev:arm64 gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user"

chroot_only=0
tests_only=0
models=""
while [ $# -gt 0 ]; do
  case "$1" in
    --chroot-only) chroot_only=1 ;;
    --tests-only) tests_only=1 ;;
    --models) models=$(realpath "$2"); shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "aarch64-check: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done

die() { echo "aarch64-check: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "needs root (debootstrap, chroot and bind mounts)"

# Step timing: `step NAME` closes the previous step and prints its duration.
step_name=""; step_start=0; timings=()
step() {
  local now; now=$(date +%s)
  if [ -n "$step_name" ]; then
    timings+=("$(printf '%-48s %5ds' "$step_name" $((now - step_start)))")
  fi
  step_name=$1; step_start=$now
  [ -n "$1" ] && echo "== $1"
  return 0
}

# Mounts made by this script, unmounted in reverse order on any exit.
mounts=()
cleanup() {
  local i
  for ((i = ${#mounts[@]} - 1; i >= 0; i--)); do
    umount "${mounts[$i]}" 2>/dev/null || umount -l "${mounts[$i]}" 2>/dev/null || \
      echo "aarch64-check: could not unmount ${mounts[$i]}" >&2
  done
  mounts=()
}
trap cleanup EXIT
bind() { # bind SRC DEST_IN_CHROOT
  mkdir -p "$chroot_dir$2"
  mount --bind "$1" "$chroot_dir$2"
  mounts+=("$chroot_dir$2")
}
# One run at a time per cache: runs share the chroot and its mounts.
mkdir -p "$cache"
exec 9>"$cache/.lock"
flock -n 9 || die "another run holds $cache/.lock"

# Mounts under the chroot left by a run that was killed (a trap cannot run on
# SIGKILL): unmounted before anything else, since removing the chroot with the
# repository still bound into it would remove the repository.
stale_mounts() { awk -v d="$chroot_dir/" 'index($2, d) == 1 { print $2 }' /proc/mounts | sort -r; }
for m in $(stale_mounts); do
  echo "chroot: unmounting $m, left by an earlier run"
  umount "$m" 2>/dev/null || umount -l "$m" || die "could not unmount $m"
done
in_chroot() { chroot "$chroot_dir" /usr/bin/env -i HOME=/root PATH=/usr/bin:/bin:/usr/sbin:/sbin LANG=C.UTF-8 "$@"; }

make_chroot() {
  if [ -f "$chroot_dir/.afr-ready" ]; then
    echo "chroot: reusing $chroot_dir"
    return
  fi
  command -v debootstrap >/dev/null || {
    echo "chroot: installing debootstrap"
    apt-get install -y -q debootstrap >/dev/null || die "could not install debootstrap (apt-get install debootstrap)"
  }
  local script=/usr/share/debootstrap/scripts/sid # forky is testing: sid's script
  [ -f "$script" ] || die "debootstrap has no script $script"
  [ -z "$(stale_mounts)" ] || die "mounts under $chroot_dir: $(stale_mounts | tr '\n' ' ')"
  rm -rf "$chroot_dir"
  mkdir -p "$cache"
  debootstrap --variant=minbase "$suite" "$chroot_dir" "$mirror" "$script" \
    || die "debootstrap $suite from $mirror failed (log: $chroot_dir/debootstrap/debootstrap.log)"
  echo 'Acquire::Check-Valid-Until "false";' > "$chroot_dir/etc/apt/apt.conf.d/99afr-no-valid-until"
  mkdir -p "$chroot_dir/etc/ssl/certs"
  cp -rL /etc/ssl/certs/. "$chroot_dir/etc/ssl/certs/"
  cp /etc/resolv.conf "$chroot_dir/etc/resolv.conf"
  bind /proc /proc
  in_chroot dpkg --add-architecture arm64
  in_chroot apt-get update -q || die "apt-get update in the chroot failed"
  # shellcheck disable=SC2086
  in_chroot env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $chroot_packages \
    || die "installing the cross toolchain in the chroot failed"
  in_chroot apt-get clean
  cleanup
  touch "$chroot_dir/.afr-ready"
}

step "chroot (Debian $suite)"
make_chroot
in_chroot rustc --version || die "$chroot_dir: no working rustc in the chroot (remove the folder to make it again)"
in_chroot cargo --version || die "$chroot_dir: no working cargo in the chroot (remove the folder to make it again)"
[ "$chroot_only" = 1 ] && { step ""; printf '%s\n' "${timings[@]}"; exit 0; }

triple=aarch64-unknown-linux-gnu
# Release with the workspace's settings: tests under emulation run optimised
# code, and it is the build a device runs.
profile=release
cross_target=$cache/target
cargo_home=$cache/cargo-home
mkdir -p "$cross_target" "$cargo_home"
bind /proc /proc
bind /dev /dev
bind "$repo" /src
bind "$cross_target" /target
bind "$cargo_home" /cargo-home

# Work folder inside the chroot's /tmp, so x86 and aarch64 runs see the same paths.
mkdir -p "$chroot_dir/tmp"
work=$(mktemp -d -p "$chroot_dir/tmp" afr-aarch64.XXXXXX)
cwork=/tmp/$(basename "$work")
trap 'cleanup; rm -rf "$work"' EXIT

cross_env=(
  CARGO_HOME=/cargo-home CARGO_TARGET_DIR=/target
  CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
  CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc AR_aarch64_unknown_linux_gnu=aarch64-linux-gnu-ar
  CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER=qemu-aarch64
  QEMU_LD_PREFIX=/usr/aarch64-linux-gnu
)
cross_cargo() { # cross_cargo [VAR=VALUE...] CARGO_ARGS...
  local envs=()
  while [[ $1 == *=* ]]; do envs+=("$1"); shift; done
  in_chroot "${cross_env[@]}" "${envs[@]}" sh -c 'cd /src && exec cargo "$@"' sh "$@"
}
test_args=(-p afr-runtime --profile "$profile" --locked --target "$triple")

step "cross build ($triple, $profile)"
cross_cargo test "${test_args[@]}" --no-run >"$work/build.log" 2>&1 || { tail -30 "$work/build.log" >&2; die "cross build failed"; }
echo "$(grep -c '^\s*Compiling' "$work/build.log" || true) crates compiled"
afr_arm=/target/$triple/$profile/afr
[ -x "$chroot_dir$afr_arm" ] || die "cross build left no $afr_arm"

cpus=(neoverse-n1 max)
declare -A passed kernels
for cpu in "${cpus[@]}"; do
  step "runtime tests, qemu -cpu $cpu"
  log=$work/tests-$cpu.log
  if ! cross_cargo "QEMU_CPU=$cpu" AFR_TEST_RUNNER=qemu-aarch64 test "${test_args[@]}" >"$log" 2>&1; then
    tail -40 "$log" >&2
    die "runtime tests failed under qemu -cpu $cpu (log above)"
  fi
  passed[$cpu]=$(awk '/^test result: ok\./ { n += $4 } END { print n + 0 }' "$log")
  echo "passed ${passed[$cpu]} tests"
  kernels[$cpu]=$(cross_cargo "QEMU_CPU=$cpu" test "${test_args[@]}" --test matmul_kernels -- --nocapture 2>/dev/null |
    grep -E '^(tract isa|mmm )')
  echo "${kernels[$cpu]}"
done

summary() {
  echo
  echo "== summary (aarch64, $triple, $profile)"
  for cpu in "${cpus[@]}"; do
    echo "-cpu $cpu: ${passed[$cpu]} runtime tests passed"
    echo "${kernels[$cpu]}" | sed 's/^/  /'
    for p in "${precisions[@]}"; do printf '  %-12s %s\n' "$p" "${parity[$cpu/$p]}"; done
  done
  echo "step times:"
  printf '  %s\n' "${timings[@]}"
}
precisions=()
declare -A parity
[ "$tests_only" = 1 ] && { step ""; summary; exit 0; }

# x86 side: the binaries from target/debug (CI's `cargo test --workspace`
# builds them), else built here.
x86=target/debug
if [ ! -x $x86/afr ] || [ ! -x $x86/afr-toolchain ] || [ ! -x $x86/afr-quantize ]; then
  step "x86 build (afr, afr-toolchain, afr-quantize)"
  cargo build --locked --workspace --bins
fi
step "x86 kernels"
# --workspace: the features `cargo test --workspace` built with, so tract is not rebuilt.
cargo test -q --locked --workspace --test matmul_kernels -- --nocapture 2>/dev/null | grep -E '^(tract isa|mmm )'

# Models: given, or a tiny model trained on synthetic data (one epoch,
# random backbones) and its fp16 and int8 versions.
category=fabric
if [ -n "$models" ]; then
  step "models from $models"
  for f in model.onnx model.fp16.onnx model.int8.onnx; do
    [ -f "$models/$f" ] || die "$models/$f: missing (--models needs model.onnx, model.fp16.onnx, model.int8.onnx, data/)"
    cp "$models/$f" "$work/"
  done
  [ -d "$models/data" ] || die "$models/data: missing (the images to score, afr-toolchain synth layout)"
  cp -r "$models/data" "$work/data"
  category=$(find "$work/data" -mindepth 1 -maxdepth 1 -type d -printf '%f\n' | sort | head -1)
else
  step "x86 tiny model (synth, train 1 epoch, export)"
  $x86/afr-toolchain synth --out "$work/data" --size 64 --test-good 2 --test-bad 2 --categories "$category" >/dev/null
  $x86/afr-toolchain train --preset tiny --clip random:0 --resnet random:0 --data "$work/data" --out "$work/run" \
    --epochs 1 >/dev/null 2>&1 || die "afr-toolchain train failed"
  $x86/afr-toolchain export --run "$work/run" --out "$work/model.onnx" >/dev/null
  step "x86 quantize (fp16, fp16 matmul, int8)"
  $x86/afr-quantize --input "$work/model.onnx" --precision fp16 --output "$work/model.fp16.onnx" \
    --calibration "$work/data" >/dev/null
  $x86/afr-quantize --input "$work/model.onnx" --precision int8 --output "$work/model.int8.onnx" \
    --calibration "$work/data" >/dev/null
fi
# f16 matmuls too: what an aarch64 CPU with f16 arithmetic computes in f16.
$x86/afr-quantize --input "$work/model.onnx" --precision fp16 --fp16-compute matmul \
  --output "$work/model.fp16-matmul.onnx" --calibration "$work/data" >/dev/null
precisions=(fp32 fp16 fp16-matmul int8)
declare -A file=([fp32]=model.onnx [fp16]=model.fp16.onnx [fp16-matmul]=model.fp16-matmul.onnx [int8]=model.int8.onnx)
# Against x86 on the same file; against fp32 on the same CPU (afr-quantize's bounds).
declare -A same_bound=([fp32]=1e-6 [fp16]=5e-3 [fp16-matmul]=5e-3 [int8]=3e-2)

score() { # score CPU|x86 PRECISION -> $work/out-CPU-PRECISION
  local root=$cwork args
  [ "$1" = x86 ] && root=$work
  args=(score --model "$root/${file[$2]}" --category "$category" --raw-maps --no-heatmaps --json
    --out "$root/out-$1-$2" "$root/data/$category/test")
  if [ "$1" = x86 ]; then
    $x86/afr "${args[@]}" >"$work/score.log" 2>&1
  else
    in_chroot QEMU_CPU="$1" QEMU_LD_PREFIX=/usr/aarch64-linux-gnu qemu-aarch64 "$afr_arm" "${args[@]}" >"$work/score.log" 2>&1
  fi || { cat "$work/score.log" >&2; return 1; }
}
compare() { python3 scripts/compare_scores.py "$work/out-$1" "$work/out-$2" --tolerance "$3"; }

step "x86 afr score --raw-maps"
for p in "${precisions[@]}"; do score x86 "$p" || die "x86 afr score failed on ${file[$p]}"; done

for cpu in "${cpus[@]}"; do
  step "parity, qemu -cpu $cpu"
  for p in "${precisions[@]}"; do
    score "$cpu" "$p" || die "aarch64 afr score failed on ${file[$p]} under -cpu $cpu"
    line=$(compare "$cpu-$p" "x86-$p" "${same_bound[$p]}") \
      || die "$p under -cpu $cpu differs from x86 by more than ${same_bound[$p]}: $line"
    parity[$cpu/$p]="vs x86 ${line#max|diff| }"
    if [ "$p" != fp32 ]; then
      line=$(compare "$cpu-$p" "$cpu-fp32" "${same_bound[$p]}") \
        || die "$p under -cpu $cpu differs from fp32 by more than ${same_bound[$p]}: $line"
      parity[$cpu/$p]+="; vs fp32 ${line#max|diff| }"
    fi
    printf '%-12s %s\n' "$p" "${parity[$cpu/$p]}"
  done
done
step ""
summary
