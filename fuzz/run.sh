#!/usr/bin/env bash
# Runs each fuzz target for SECONDS (default 60) with cargo-fuzz and libFuzzer.
#
#   fuzz/run.sh [SECONDS] [TARGET...]      # targets: token policy (default: both)
#
# There is no nightly toolchain here: RUSTC_BOOTSTRAP=1 lets stable rustc take the
# nightly flags cargo-fuzz passes (-Zsanitizer=address, coverage instrumentation).
# If the sanitizer build fails on a toolchain, ENVOI_FUZZ_SANITIZER=none falls back to
# coverage-guided fuzzing without AddressSanitizer.
#
# The seed corpus in fuzz/seeds/<target>/ is copied into fuzz/corpus/<target>/ (which
# grows as libFuzzer finds new inputs and is not committed), with <target>.dict as a
# dictionary; inputs may reach 16 KiB (past the 8 KiB token limit); crashes land in
# fuzz/artifacts/<target>/. A crash, a timeout (-timeout, 10 s per input) or an
# out-of-memory (-rss_limit_mb) makes the script exit non-zero.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

seconds="${1:-60}"
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(token policy)

command -v cargo-fuzz >/dev/null 2>&1 || {
  echo "cargo-fuzz is missing: cargo install cargo-fuzz" >&2
  exit 2
}

export RUSTC_BOOTSTRAP=1
sanitizer=(--sanitizer "${ENVOI_FUZZ_SANITIZER:-address}")

status=0
for target in "${targets[@]}"; do
  mkdir -p "corpus/$target" "artifacts/$target"
  cp -n "seeds/$target"/* "corpus/$target/" 2>/dev/null || true
  echo "==> fuzzing $target for ${seconds}s"
  # stdin from /dev/null: a policy naming `file = "/dev/stdin"` must not wait on a tty.
  dict=()
  [ -f "$target.dict" ] && dict=(-dict="$target.dict")
  if ! cargo fuzz run "${sanitizer[@]}" -O "$target" "corpus/$target" -- \
      -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=16384 \
      -print_final_stats=1 "${dict[@]}" </dev/null; then
    echo "!!> $target: libFuzzer reported a failure; inputs are in fuzz/artifacts/$target/" >&2
    status=1
  fi
done
exit "$status"
