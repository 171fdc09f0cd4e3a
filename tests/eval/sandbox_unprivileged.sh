#!/usr/bin/env bash
# The sandbox tests (Sandbox.*) again as an unprivileged user. CI runs the suite as root, where the
# sandbox drops to uid 65534 and may get a cgroup; an ordinary user takes other paths (bwrap with the
# caller's own uid, usually no cgroup and so the memory watchdog), and those must hold too.
#
# Needs root (to create the user); never skips: without root, useradd, runuser or bubblewrap it
# fails and says why.
#   usage: sandbox_unprivileged.sh PATH/TO/cogumi_tests
set -uo pipefail

die() {
  echo "sandbox_unprivileged: FAIL: $*" >&2
  exit 1
}

bin=${1:-}
[ -n "$bin" ] && [ -x "$bin" ] || die "usage: $0 PATH/TO/cogumi_tests (got '${bin}')"
[ "$(id -u)" = 0 ] || die "must run as root to create the test user with useradd (CI runs as root)"
command -v bwrap >/dev/null 2>&1 || [ -x /usr/bin/bwrap ] ||
  die "bubblewrap (bwrap) is not installed: sudo apt-get install bubblewrap"
for tool in useradd userdel runuser getent ldd; do
  command -v "$tool" >/dev/null 2>&1 || die "'$tool' not found (packages passwd, util-linux, libc-bin)"
done

user=cogumi-sbx-test
created=0
if ! id -u "$user" >/dev/null 2>&1; then
  useradd --create-home --shell /usr/sbin/nologin --comment "cogumi sandbox test" "$user" ||
    die "cannot create the user '$user' with useradd"
  created=1
fi
home=$(getent passwd "$user" | cut -d: -f6)
[ -n "$home" ] && [ -d "$home" ] || die "user '$user' has no home directory ('$home')"
[ "$(id -u "$user")" != 0 ] || die "user '$user' has uid 0"

work=$(mktemp -d /var/tmp/cogumi-sbx-unprivileged-XXXXXX) || die "mktemp failed"
cleanup() {
  rm -rf "$work"
  if [ "$created" = 1 ]; then userdel -r "$user" >/dev/null 2>&1 || userdel "$user"; fi
}
trap cleanup EXIT

# The binary and the libraries it loads from places the user may not enter (llama.cpp's build
# cache under /root), copied where it can read them.
mkdir -p "$work/lib"
cp "$bin" "$work/cogumi_tests" || die "cannot copy $bin"
while read -r lib; do
  case "$lib" in
    /lib/* | /lib64/* | /usr/lib/* | /usr/lib64/*) ;;
    *) cp -L "$lib" "$work/lib/" || die "cannot copy $lib" ;;
  esac
done < <(ldd "$bin" | awk '$2 == "=>" && $3 ~ /^\// {print $3}')
if ldd "$bin" | grep -q 'not found'; then die "$bin has unresolved libraries: $(ldd "$bin" | grep 'not found')"; fi
chmod -R a+rX "$work"

cd "$work" || die "cannot enter $work"
log="$work/test.log"
runuser -u "$user" -- env -i HOME="$home" USER="$user" LOGNAME="$user" LANG=C.UTF-8 \
  PATH=/usr/local/bin:/usr/bin:/bin LD_LIBRARY_PATH="$work/lib" \
  "$work/cogumi_tests" --gtest_filter='Sandbox.*' 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
[ "$rc" = 0 ] || die "Sandbox.* failed as user '$user' (exit $rc)"
grep -qE '^\[  PASSED  \] [1-9][0-9]* test' "$log" || die "no Sandbox.* test ran as user '$user'"
grep -q '^\[  SKIPPED \]' "$log" && die "a Sandbox.* test was skipped as user '$user'"
echo "sandbox_unprivileged: Sandbox.* passed as user '$user' (uid $(id -u "$user"))"
