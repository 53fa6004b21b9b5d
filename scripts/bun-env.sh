# Sourced by the project's scripts: puts the pinned Bun on PATH, installing it from npm when missing.
# The `bun` npm package carries the binary (its postinstall picks the platform build), so no other download is needed.
BUN_PINNED="1.3.14"
if [ "$(bun --version 2>/dev/null)" != "$BUN_PINNED" ]; then
  bun_home="${XDG_CACHE_HOME:-$HOME/.cache}/cdc-stack/bun-$BUN_PINNED"
  if [ "$("$bun_home/node_modules/.bin/bun" --version 2>/dev/null)" != "$BUN_PINNED" ]; then
    echo "bun: installing $BUN_PINNED from npm into $bun_home" >&2
    mkdir -p "$bun_home"
    npm install --silent --no-audit --no-fund --prefix "$bun_home" "bun@$BUN_PINNED" >&2 || {
      echo "bun: npm install bun@$BUN_PINNED failed" >&2; return 1 2>/dev/null || exit 1; }
  fi
  export PATH="$bun_home/node_modules/.bin:$PATH"
fi
