# OpenID Connect provider for the login tests (tests/app/test_browser_login.py): oidc-provider-mock, pinned in
# requirements.txt, from the project's venv, on 127.0.0.1 only. Sourced by .ci/run (cwd = repository root) with
# `set -euo pipefail` active, so it stays in the caller's shell: no `exit`, no global option changes.
# Idempotent: a provider already answering on the port is reused. Installs nothing but the venv's pip packages
# (`make setup`, which `make test` runs anyway). Exports MRELENS_TEST_OIDC_URL; without it the test starts its own
# provider on a loopback port of 8800-8899.

oidc_ci_port=${OIDC_CI_PORT:-8899}
oidc_ci_url="http://127.0.0.1:$oidc_ci_port"
oidc_ci_python="${VENV:-.venv}/bin/python"
oidc_ci_up() {
  "$oidc_ci_python" -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2).read()' \
    "$oidc_ci_url/.well-known/openid-configuration" >/dev/null 2>&1
}

make -s setup
if ! oidc_ci_up; then
  # loopback only; the provider outlives this script like the PostgreSQL cluster does
  nohup "$oidc_ci_python" -m oidc_provider_mock --host 127.0.0.1 --port "$oidc_ci_port" \
    >"${TMPDIR:-/tmp}/mrelens-oidc-provider.log" 2>&1 &
  for _ in $(seq 1 30); do oidc_ci_up && break; sleep 1; done
fi
if oidc_ci_up; then
  export MRELENS_TEST_OIDC_URL="$oidc_ci_url"
  echo "oidc-provider-mock on $oidc_ci_url, MRELENS_TEST_OIDC_URL set"
else
  echo "oidc-provider-mock did not answer on $oidc_ci_url (log: ${TMPDIR:-/tmp}/mrelens-oidc-provider.log);" \
    "the login tests start their own provider"
fi
