#!/usr/bin/env bash
# Start a throwaway PostgreSQL server on 127.0.0.1 for the tests and print its SQLAlchemy URL.
# Installs Debian's postgresql when it is missing. Usage: export DBANK_TEST_POSTGRES_URL=$(scripts/start-test-postgres.sh)
set -euo pipefail
port=${DBANK_TEST_POSTGRES_PORT:-54329}
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql) >&2
fi
bin=$(dirname "$(ls /usr/lib/postgresql/*/bin/initdb | sort -V | tail -n 1)")
data=$(mktemp -d /tmp/dbank-pg.XXXXXX)
run() { if [ "$(id -u)" = 0 ]; then su postgres -s /bin/bash -c "$*"; else bash -c "$*"; fi; }
[ "$(id -u)" = 0 ] && chown postgres "$data"
run "$bin/initdb -D $data -A trust -U postgres" >/dev/null
run "$bin/pg_ctl -D $data -l $data/log -w -o \"-p $port -k /tmp -c listen_addresses=127.0.0.1 -c max_connections=200 -c fsync=off\" start" >/dev/null
run "$bin/createdb -h 127.0.0.1 -p $port -U postgres dbank_test"
echo "postgresql+psycopg://postgres@127.0.0.1:$port/dbank_test"
