#!/usr/bin/env bash
# A throwaway PostgreSQL server for the tests (Debian's postgresql package):
#   scripts/pg-test-server.sh start DIR   initdb in DIR (if new), start it on a free
#                                         loopback port, print its URI (also in DIR/uri)
#   scripts/pg-test-server.sh stop DIR    stop it (the data stays in DIR)
# Trust authentication on 127.0.0.1 only; the tests create and drop their own
# databases through the URI's superuser "keel". As root, the server runs as
# the postgres user (PostgreSQL refuses to run as root).
set -euo pipefail
cmd=${1:?usage: pg-test-server.sh start|stop DIR}
dir=${2:?usage: pg-test-server.sh start|stop DIR}
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[ -n "$bin" ] || { echo "pg-test-server: PostgreSQL is not installed (scripts/install-deps.sh)" >&2; exit 1; }
as_owner() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
data="$dir/data"
case "$cmd" in
  start)
    if [ "$(id -u)" -eq 0 ]; then chown postgres "$dir"; fi
    if [ ! -f "$data/PG_VERSION" ]; then
      as_owner "$bin/initdb" -D "$data" -U keel --auth=trust -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 ||
        { cat "$dir/initdb.log" >&2; exit 1; }
    fi
    if as_owner "$bin/pg_ctl" -D "$data" status >/dev/null 2>&1; then
      cat "$dir/uri"
      exit 0
    fi
    port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    # fsync=off: the tests kill keel, never this server or the machine, so
    # what the server acknowledged is kept either way; it makes each test's
    # CREATE DATABASE several times faster.
    as_owner "$bin/pg_ctl" -D "$data" -l "$dir/server.log" -w -t 60 start \
      -o "-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories=$dir -c max_connections=300 -c fsync=off" \
      >/dev/null || { cat "$dir/server.log" >&2; exit 1; }
    echo "postgresql://keel@127.0.0.1:$port/postgres" | tee "$dir/uri"
    ;;
  stop)
    if [ -f "$data/PG_VERSION" ]; then as_owner "$bin/pg_ctl" -D "$data" -m fast -w stop >/dev/null || true; fi
    ;;
  *)
    echo "usage: pg-test-server.sh start|stop DIR" >&2
    exit 2
    ;;
esac
