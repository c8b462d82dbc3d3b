#!/usr/bin/env sh
# Regenerate the completion scripts from the installed `soul` (tests fail when they are stale).
set -eu
cd "$(dirname "$0")"
for shell in bash zsh fish; do
    env -i PATH="$(dirname "$(command -v soul)"):/usr/bin:/bin" _SOUL_COMPLETE="source_${shell}" soul > "soul.$shell"
done
