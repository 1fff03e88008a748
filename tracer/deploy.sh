# splitbrain zero-deploy: the remote half (the local half is tracer/deploy.cc, which embeds this
# file at build time). sbrun runs it on machine B as the ssh command
#
#   sh -c SCRIPT sbdeploy VERSION
#
# and talks with it over the stdin and stdout of the ssh connection. When it is done it execs the
# agent with --stdio on that same stdin and stdout, so one ssh connection asks, uploads and then
# carries the protocol of the agent: no port opened on B, and nothing left running once ssh ends.
#
# The dialogue, one line per message:
#   B: sbdeploy 1 MACHINE DIR          MACHINE is `uname -m`, DIR the cache directory
#   B: have NAME SHA256                 for each agent already cached in DIR
#   B: end
#   A: run NAME                         the cached NAME is the right one (A compared SHA256)
#   A: upload NAME SIZE SHA256          then exactly SIZE bytes of the agent; A sends nothing
#                                       more until B answers, so `head -c` cannot read too far
#   B: ready                            then it execs DIR/NAME --stdio
#   B: error MESSAGE                    and exits 1
#
# POSIX sh and the tools a small board has (busybox included): uname, mkdir, chmod, mv, rm,
# head -c, and one of sha256sum, shasum or openssl to check the agent before running it.
# No single quotes in this file: sbrun passes it to the shell of B inside single quotes
# (tracer/deploy.cc checks at compile time).

umask 077
version=$1
dir=${XDG_CACHE_HOME:-$HOME/.cache}/splitbrain/$version

say() {
  printf "%s\n" "$*"
}

fail() {
  say "error $*"
  exit 1
}

# The SHA-256 of file $1, in hex, with whichever tool B has.
sha256() {
  if command -v sha256sum >/dev/null 2>&1; then
    out=$(sha256sum < "$1") || return 1
  elif command -v shasum >/dev/null 2>&1; then
    out=$(shasum -a 256 < "$1") || return 1
  elif command -v openssl >/dev/null 2>&1; then
    out=$(openssl dgst -sha256 -r < "$1") || return 1
  else
    return 1
  fi
  set -- $out
  printf "%s\n" "$1"
}

machine=$(uname -m) || fail "uname -m failed on B"
say "sbdeploy 1 $machine $dir"
sha256 /dev/null >/dev/null ||
  fail "B has no sha256sum, shasum or openssl to check the agent with: install one (coreutils or busybox)"
for f in "$dir"/sbagent-*; do
  [ -f "$f" ] || continue
  sum=$(sha256 "$f") || continue
  say "have ${f##*/} $sum"
done
say end

read -r verb name size sum || exit 1
case $name in
  sbagent-*[!A-Za-z0-9_-]* | "") fail "bad agent name: $name" ;;
  sbagent-?*) ;;
  *) fail "bad agent name: $name" ;;
esac
agent=$dir/$name
case $verb in
  run) ;;
  upload)
    case $size in
      "" | *[!0-9]*) fail "bad size: $size" ;;
    esac
    mkdir -p "$dir" ||
      fail "cannot create $dir on B (a read-only home? give ssh sessions there an XDG_CACHE_HOME where files may be written and run)"
    chmod 700 "$dir" || fail "cannot chmod $dir on B"
    # A name of this process alone, then an atomic rename: a concurrent sbrun, or one cut off
    # mid-upload, never leaves a half-written agent under the final name.
    tmp=$dir/.$name.$$
    head -c "$size" > "$tmp" || { rm -f "$tmp"; fail "writing $tmp on B failed"; }
    got=$(sha256 "$tmp") || { rm -f "$tmp"; fail "cannot checksum $tmp on B"; }
    if [ "$got" != "$sum" ]; then
      rm -f "$tmp"
      fail "the upload arrived damaged (sha256 $got, sent $sum): try again"
    fi
    chmod 700 "$tmp" && mv -f "$tmp" "$agent" || { rm -f "$tmp"; fail "cannot install $agent on B"; }
    ;;
  *) exit 1 ;;
esac
say ready
exec "$agent" --stdio
