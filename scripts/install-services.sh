#!/bin/sh
# The PostgreSQL and Redis servers, and the PgBouncer in front of PostgreSQL, that the tests start for
# themselves (test/services/): installs them from Debian's packages when they are missing. Quiet when
# there is nothing to do; run it again at will.
# The tests run their own servers on free ports, so the system services the packages may start are
# never used.
set -u

have_postgres() {
  for bin in /usr/lib/postgresql/*/bin/postgres; do
    [ -x "$bin" ] && return 0
  done
  return 1
}

have_pgbouncer() {
  command -v pgbouncer >/dev/null 2>&1 || [ -x /usr/sbin/pgbouncer ]
}

have_redis() {
  command -v redis-server >/dev/null 2>&1 || [ -x /usr/bin/redis-server ]
}

# Installs a Debian package, refreshing the package lists once when the first attempt fails (a fresh
# machine often has none yet).
install() {
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "install-services: $2 is missing: install the Debian package '$1' (apt-get install $1), as root" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-get install -y -qq "$1" >/dev/null 2>&1; then
    apt-get update -qq >/dev/null 2>&1
    if ! apt-get install -y -qq "$1" >/dev/null 2>&1; then
      echo "install-services: 'apt-get install $1' failed; run it by hand to see why" >&2
      exit 1
    fi
  fi
}

have_postgres || install postgresql 'the PostgreSQL server (/usr/lib/postgresql/*/bin/postgres)'
have_postgres || { echo "install-services: postgresql installed, but no /usr/lib/postgresql/*/bin/postgres" >&2; exit 1; }
have_redis || install redis-server 'redis-server'
have_redis || { echo "install-services: redis-server installed, but not on PATH" >&2; exit 1; }
have_pgbouncer || install pgbouncer 'pgbouncer'
have_pgbouncer || { echo "install-services: pgbouncer installed, but not found" >&2; exit 1; }
