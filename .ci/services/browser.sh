# Debian's Chromium and its WebDriver for the real-browser end-to-end test (tests/app/test_browser.py).
# Sourced by .ci/run as root on Debian 12; idempotent: installs only what is missing. No browser is downloaded
# by the tests themselves (selenium is pointed at /usr/bin/chromium and /usr/bin/chromedriver).
if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends chromium chromium-driver
fi
/usr/bin/chromium --version
/usr/bin/chromedriver --version
