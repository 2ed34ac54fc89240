#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for the tests of the PostgreSQL store.
#   tests/postgres.sh start DIR   creates the cluster in DIR/data (first time), starts it on a free
#                                 loopback port and prints its URL on stdout, alone:
#                                 postgres://certvigil@127.0.0.1:PORT/postgres
#                                 On a DIR whose cluster is already running, prints the URL again.
#   tests/postgres.sh stop DIR    stops it (immediate: nothing in it is worth a clean shutdown).
# Everything else goes to stderr. DIR holds the data directory, the server log (DIR/log) and the
# Unix socket; delete it after `stop`.
#
# PostgreSQL's binaries are taken from /usr/lib/postgresql/<newest version>/bin (Debian's layout);
# when there are none they are installed (Debian package postgresql). initdb, pg_ctl and the
# server refuse to run as root: as root, the cluster runs as the unprivileged user `nobody` and
# DIR is handed to it, so DIR must then be new or empty and its parent searchable by `nobody` (a
# fresh temporary directory such as /tmp/tmp.XXXX itself is; a directory inside one is not).
# The cluster uses the C collation: text sorts byte-wise, as SQLite sorts it.
#
# Authentication is `trust`: the server listens on 127.0.0.1 only, lives for one test run and
# holds test data only; a generated password would protect nothing that matters and would end up
# in the URL, hence in test logs, anyway.
set -euo pipefail

PG_ROOT=/usr/lib/postgresql
CLUSTER_USER=nobody            # used only when run as root
DB_USER=certvigil

say() { echo "[postgres.sh] $*" >&2; }
die() {
  say "error: $*"
  exit 1
}

usage() { die "usage: $0 start|stop DIR"; }

# The newest bin directory under $PG_ROOT holding the programs we run, or nothing.
find_bindir() {
  local dir
  for dir in $(ls -d "$PG_ROOT"/*/bin 2>/dev/null | sort -V -r); do
    if [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ] && [ -x "$dir/postgres" ]; then
      echo "$dir"
      return 0
    fi
  done
}

# The binaries of the data directory's version when it exists, else the newest.
bindir_of_data() {
  if [ -f "$DATA/PG_VERSION" ]; then
    local dir
    dir=$PG_ROOT/$(cat "$DATA/PG_VERSION")/bin
    if [ -x "$dir/pg_ctl" ]; then echo "$dir"; fi
  else
    find_bindir
  fi
}

install_postgres() {
  command -v apt-get >/dev/null 2>&1 || die "PostgreSQL is not installed ($PG_ROOT/*/bin/initdb) and there is no apt-get to install it: install the PostgreSQL server (15 or newer)"
  say "installing: postgresql (no $PG_ROOT/*/bin/initdb)"
  local sudo=()
  [ "$(id -u)" = 0 ] || sudo=(sudo)
  "${sudo[@]}" apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends postgresql >&2
}

# Runs a command as the cluster's user: ourselves, or $CLUSTER_USER when we are root.
as_cluster_user() {
  if [ "$(id -u)" != 0 ]; then
    "$@"
  elif command -v runuser >/dev/null 2>&1; then
    runuser -u "$CLUSTER_USER" -- "$@"
  else
    setpriv --reuid="$CLUSTER_USER" --regid="$(id -g "$CLUSTER_USER")" --clear-groups -- "$@"
  fi
}

cluster_user_name() { if [ "$(id -u)" = 0 ]; then echo "$CLUSTER_USER"; else id -un; fi; }

# The port of the running cluster in $DATA (4th line of postmaster.pid), or nothing when it is
# not running.
running_port() {
  as_cluster_user "$BINDIR/pg_ctl" -D "$DATA" status >/dev/null 2>&1 || return 0
  sed -n 4p "$DATA/postmaster.pid"
}

# A free TCP port on 127.0.0.1 in the kernel's ephemeral range (no listener on it). Another
# process may still take it before the server binds: `start` tries again then.
free_port() {
  local lo hi port hex
  read -r lo hi </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || { lo=32768 hi=60999; }
  for _ in $(seq 1 100); do
    port=$((lo + (RANDOM * 32768 + RANDOM) % (hi - lo + 1)))
    hex=$(printf ':%04X ' "$port")
    # /proc/net/tcp{,6}: local address is field 2 (addr:PORT in hex), state 0A is LISTEN.
    if ! cat /proc/net/tcp /proc/net/tcp6 2>/dev/null | awk -v p="$hex" '$4 == "0A" && index($2 " ", p) { found = 1 } END { exit !found }'; then
      echo "$port"
      return 0
    fi
  done
  die "no free port found in $lo-$hi"
}

url() { echo "postgres://$DB_USER@127.0.0.1:$1/postgres"; }

[ $# -eq 2 ] || usage
cmd=$1
case "$2" in
  /*) DIR=$2 ;;
  *) DIR=$PWD/$2 ;;
esac
DIR=${DIR%/}
DATA=$DIR/data
# The path goes into pg_ctl's -o string, which a shell splits, and names the socket directory.
case "$DIR" in
  *[[:space:]\'\"\\\$\`]*) die "DIR must not contain spaces, quotes, backslashes, \$ or backquotes: $DIR" ;;
esac
# A Unix socket path is limited to 107 bytes: DIR/.s.PGSQL.NNNNN must fit.
[ $((${#DIR} + 16)) -le 107 ] || die "DIR is too long for the server's Unix socket (at most 91 bytes): $DIR"

# A data directory made earlier is run by its owner.
if [ "$(id -u)" = 0 ] && [ -d "$DATA" ]; then
  CLUSTER_USER=$(stat -c %U "$DATA")
fi
if [ "$(id -u)" = 0 ]; then
  id -u "$CLUSTER_USER" >/dev/null 2>&1 || die "running as root, but there is no user $CLUSTER_USER to run the cluster as"
fi

case "$cmd" in
  start)
    BINDIR=$(bindir_of_data)
    if [ -z "$BINDIR" ] && [ -f "$DATA/PG_VERSION" ]; then
      die "$DATA is a PostgreSQL $(cat "$DATA/PG_VERSION") cluster and $PG_ROOT/$(cat "$DATA/PG_VERSION")/bin is missing"
    fi
    if [ -z "$BINDIR" ]; then
      install_postgres
      BINDIR=$(find_bindir)
      [ -n "$BINDIR" ] || die "PostgreSQL was installed but $PG_ROOT/*/bin/initdb is still missing"
    fi
    parent=$DIR
    while [ "$parent" != / ]; do
      parent=$(dirname "$parent")
      [ ! -d "$parent" ] || as_cluster_user test -x "$parent" ||
        die "$(cluster_user_name) cannot reach $DIR: $parent is not searchable by it (give a directory such as a fresh one under /tmp)"
    done
    if [ "$(id -u)" = 0 ] && [ -d "$DIR" ] && [ "$(stat -c %U "$DIR")" != "$CLUSTER_USER" ] && [ -n "$(ls -A "$DIR")" ]; then
      die "$DIR is not empty: as root, DIR is handed to $CLUSTER_USER, so it must be new or empty"
    fi
    mkdir -p "$DIR"
    if [ "$(id -u)" = 0 ]; then
      chown "$CLUSTER_USER" "$DIR"
      chmod 0700 "$DIR"
    fi
    as_cluster_user test -w "$DIR" -a -x "$DIR" || die "$DIR is not writable by $(cluster_user_name)"

    if [ -f "$DATA/PG_VERSION" ]; then
      port=$(running_port)
      if [ -n "$port" ]; then
        url "$port"
        exit 0
      fi
    elif [ -e "$DATA" ] && [ -n "$(ls -A "$DATA")" ]; then
      die "$DATA exists and is not a PostgreSQL data directory"
    else
      say "initdb $DATA ($BINDIR)"
      # C collation and UTF-8: text sorts and compares byte-wise, as in SQLite.
      as_cluster_user "$BINDIR/initdb" -D "$DATA" -U "$DB_USER" --auth=trust --encoding=UTF8 --locale=C --no-sync >&2 ||
        die "initdb failed"
    fi

    for attempt in 1 2 3 4 5; do
      port=$(free_port)
      logged=0
      if [ -f "$DIR/log" ]; then logged=$(wc -l <"$DIR/log"); fi
      if as_cluster_user "$BINDIR/pg_ctl" -D "$DATA" -l "$DIR/log" -w -t 60 \
        -o "-k '$DIR' -p $port -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200" start >&2; then
        say "started on 127.0.0.1:$port (log: $DIR/log)"
        url "$port"
        exit 0
      fi
      if tail -n +"$((logged + 1))" "$DIR/log" 2>/dev/null | grep -q "could not bind\|could not create any TCP/IP sockets"; then
        say "port $port was taken, trying another (attempt $attempt)"
        continue
      fi
      tail -n +"$((logged + 1))" "$DIR/log" >&2 2>/dev/null || true
      die "the server did not start (log: $DIR/log)"
    done
    die "no port could be bound after 5 attempts (log: $DIR/log)"
    ;;
  stop)
    [ -f "$DATA/PG_VERSION" ] || die "$DATA is not a PostgreSQL data directory"
    BINDIR=$(bindir_of_data)
    [ -n "$BINDIR" ] || die "no PostgreSQL $(cat "$DATA/PG_VERSION") binaries under $PG_ROOT for $DATA"
    if [ -z "$(running_port)" ]; then
      say "not running: $DATA"
      exit 0
    fi
    as_cluster_user "$BINDIR/pg_ctl" -D "$DATA" -m immediate -w stop >&2
    ;;
  *) usage ;;
esac
