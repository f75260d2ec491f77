#!/usr/bin/env bash
# Checks that devgate compiles for the platforms its users are on but CI does not run: Windows (lint of
# the library, binary and tests with MinGW's C compiler for the C dependencies) and macOS, Intel and
# Apple silicon (type-check; with --codegen also every object of the binary, which is where an ELF-only
# link section failed). No macOS SDK or linker exists here, so the C dependencies are "compiled" by a
# stand-in that writes empty objects and the link is skipped: this proves the Rust code, not a binary.
# With --run-windows it also builds devgate.exe and runs it under wine (installed when missing): MCP over
# stdio against the simulated Bitbucket of a Linux `devgate sandbox`, paging with a cursor.
# Usage: .ci/cross-check.sh [--codegen] [--run-windows]   (idempotent; installs the targets and MinGW)
set -euo pipefail
cd "$(dirname "$0")/.."

targets=(x86_64-pc-windows-gnu x86_64-apple-darwin aarch64-apple-darwin)
installed=$(rustup target list --installed)
for t in "${targets[@]}"; do
  grep -qx "$t" <<<"$installed" || rustup target add "$t"
done
if ! command -v x86_64-w64-mingw32-gcc >/dev/null 2>&1; then
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gcc-mingw-w64-x86-64 >/dev/null
fi

echo "== Windows (x86_64-pc-windows-gnu): clippy on library, binary and tests"
cargo clippy --locked --target x86_64-pc-windows-gnu --all-targets -- -D warnings

stand_in=$(mktemp -d)
trap 'rm -rf "$stand_in"' EXIT
cat >"$stand_in/cc" <<'EOF'
#!/bin/sh
# Writes an empty object wherever -o points.
out=""; prev=""
for a in "$@"; do
  [ "$prev" = "-o" ] && out="$a"
  case "$a" in -o?*) out="${a#-o}" ;; esac
  prev="$a"
done
[ -n "$out" ] && : >"$out"
exit 0
EOF
cat >"$stand_in/ar" <<'EOF'
#!/bin/sh
# Writes the named archive as a valid, empty one.
case "$1" in -*) shift ;; esac
shift 2>/dev/null
[ -n "$1" ] && printf '!<arch>\n' >"$1"
exit 0
EOF
chmod +x "$stand_in/cc" "$stand_in/ar"

for t in x86_64-apple-darwin aarch64-apple-darwin; do
  v=${t//-/_}
  export SDKROOT="$stand_in" "CC_$v=$stand_in/cc" "CXX_$v=$stand_in/cc" "AR_$v=$stand_in/ar"
  echo "== macOS ($t): type-check of library, binary and tests"
  cargo check --locked --target "$t" --all-targets
  if [[ " $* " == *" --codegen "* ]]; then
    echo "== macOS ($t): code generation of the binary (link skipped)"
    env "CARGO_TARGET_${v^^}_LINKER=true" cargo build --locked --target "$t" --bin devgate
  fi
done
unset SDKROOT

if [[ " $* " == *" --run-windows "* ]]; then
  echo "== Windows: devgate.exe under wine, MCP over stdio against the simulated Bitbucket"
  if ! command -v wine >/dev/null 2>&1; then
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wine64 >/dev/null
  fi
  cargo build --locked --target x86_64-pc-windows-gnu --bin devgate
  # The Linux binary serves the simulated providers (any recent build will do).
  [ -x target/debug/devgate ] || cargo build --locked --bin devgate
  run="$stand_in/win"
  mkdir -p "$run"
  cp target/x86_64-pc-windows-gnu/debug/devgate.exe "$run/"
  # Rust's std takes random bytes from bcryptprimitives.dll's ProcessPrng, which wine 8 lacks.
  printf '%s\n' '#include <windows.h>' \
    'BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);' \
    '__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len) {' \
    '  return len <= 0xFFFFFFFF && SystemFunction036(data, (ULONG)len);' \
    '}' >"$run/bcp.c"
  x86_64-w64-mingw32-gcc -shared -o "$run/bcryptprimitives.dll" "$run/bcp.c" -ladvapi32
  port=$((20000 + RANDOM % 20000))
  target/debug/devgate sandbox --listen "127.0.0.1:$port" --buddy "127.0.0.1:$((port + 1))" \
    --bitbucket "127.0.0.1:$((port + 2))" >"$run/sandbox.log" 2>&1 &
  sandbox=$!
  trap 'kill "$sandbox" 2>/dev/null; rm -rf "$stand_in"' EXIT
  for _ in $(seq 100); do grep -q "Simulated Bitbucket" "$run/sandbox.log" && break; sleep 0.2; done
  printf '[providers.bitbucket]\napi_base = "http://127.0.0.1:%s/2.0"\ntoken = "${SIM_TOKEN}"\nworkspace = "acme"\n' \
    "$((port + 2))" >"$run/devgate.toml"
  SIM_TOKEN=sim-bitbucket-token WINEDEBUG=-all timeout 300 python3 .ci/wine-stdio.py "$run"
fi
echo "== cross-check ok"
