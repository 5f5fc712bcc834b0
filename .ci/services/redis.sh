# Redis for the job-queue test that runs huey on Redis storage (sourced by .ci/run as root on Debian 12, before
# `make test`). Installs Debian's redis-server, starts it on 127.0.0.1 only (no persistence: a test queue), and
# exports TEST_REDIS_URL. Idempotent: a second run reuses the running server.
# Sourced with `set -euo pipefail` active, so it stays in the caller's shell: no `exit`, no global option changes.

redis_ci_port=${REDIS_CI_PORT:-8690}

if ! command -v redis-server >/dev/null 2>&1; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
fi
if ! redis-cli -h 127.0.0.1 -p "$redis_ci_port" ping >/dev/null 2>&1; then
  redis-server --bind 127.0.0.1 --port "$redis_ci_port" --daemonize yes --save '' --appendonly no \
    --logfile /tmp/redis-ci.log
  for _ in $(seq 1 30); do redis-cli -h 127.0.0.1 -p "$redis_ci_port" ping >/dev/null 2>&1 && break; sleep 0.2; done
fi

export TEST_REDIS_URL="redis://127.0.0.1:$redis_ci_port/0"
echo "Redis on 127.0.0.1:$redis_ci_port, TEST_REDIS_URL set"
