# PostgreSQL for the db test suite (sourced by .ci/run as root on Debian 12, before `make test`).
# Installs the Debian server package, starts a cluster on 127.0.0.1 only, creates a test role and database, and
# exports TEST_POSTGRES_URL. Idempotent: a second run on the same machine reuses the cluster, role and database.
# Sourced with `set -euo pipefail` active, so it stays in the caller's shell: no `exit`, no global option changes.

pg_ci_user=mrelens
pg_ci_password=mrelens
pg_ci_db=mrelens_test
pg_ci_port=${PG_CI_PORT:-5432}

if ! command -v pg_ctlcluster >/dev/null 2>&1 || ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
fi

pg_ci_version=$(ls /usr/lib/postgresql | sort -V | tail -n 1)
if ! pg_lsclusters -h | awk '{print $1" "$2}' | grep -qx "$pg_ci_version main"; then
  pg_createcluster "$pg_ci_version" main --port "$pg_ci_port" >/dev/null
fi
# loopback only: the server must not be reachable from outside the machine
sed -i "s/^#\?listen_addresses.*/listen_addresses = '127.0.0.1'/" "/etc/postgresql/$pg_ci_version/main/postgresql.conf"
if ! pg_lsclusters -h | awk -v v="$pg_ci_version" '$1==v && $2=="main" {print $4}' | grep -qx online; then
  pg_ctlcluster "$pg_ci_version" main start
fi

# root cannot run postgres or connect as its superuser: act as the postgres OS user (peer authentication)
pg_ci_psql() { runuser -u postgres -- psql -v ON_ERROR_STOP=1 -qtA "$@"; }
for _ in $(seq 1 30); do pg_ci_psql -c 'select 1' >/dev/null 2>&1 && break; sleep 1; done
if [ "$(pg_ci_psql -c "select 1 from pg_roles where rolname = '$pg_ci_user'")" != 1 ]; then
  pg_ci_psql -c "create role $pg_ci_user login password '$pg_ci_password'"
fi
if [ "$(pg_ci_psql -c "select 1 from pg_database where datname = '$pg_ci_db'")" != 1 ]; then
  pg_ci_psql -c "create database $pg_ci_db owner $pg_ci_user"
fi

export TEST_POSTGRES_URL="postgresql+psycopg://$pg_ci_user:$pg_ci_password@127.0.0.1:$pg_ci_port/$pg_ci_db"
echo "PostgreSQL $pg_ci_version on 127.0.0.1:$pg_ci_port, TEST_POSTGRES_URL set"
