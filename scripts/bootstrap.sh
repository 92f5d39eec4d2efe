#!/usr/bin/env bash
# Installs what building, running, testing and benchmarking Gatehouse needs on Debian 12 — only
# what is missing, so it is safe to run again. Needs root (or sudo) for apt-get; Swift must
# already be installed (Swift 6.3 in /opt/swift is found without PATH changes).
#
#   scripts/bootstrap.sh                  build and run `gatehouse serve` (its embedded redis-server)
#   scripts/bootstrap.sh --tests          also every real peer the test suite starts
#   scripts/bootstrap.sh --bench          also what benchmarks/e2e.sh drives (includes --tests)
#   scripts/bootstrap.sh --require PROG…  install nothing; exit 1 naming the package of each PROG
#                                         that is missing (scripts/topology.sh uses this)
#   scripts/bootstrap.sh --table          print the table of external programs below
#
# The table is the one list of programs outside the Swift build that Gatehouse's tests, scripts
# and benchmarks start. A program is a name looked up on PATH (and in /usr/sbin, /sbin), or an
# absolute path, present when that file exists (a daemon's service binary, a loadable module).
# GatehouseTesting's ExternalProgram table says the same, and a test (ExternalProgramTests)
# fails when the two disagree or a program the tests use is missing here.
set -euo pipefail

# program                                       group  source  package              started by
read -r -d '' table <<'TABLE' || true
redis-server                                    run    debian  redis-server         `gatehouse serve` (embedded default), every Redis-backed test, topology.sh
redis-cli                                       run    debian  redis-tools          scripts/topology.sh, scripts/topology-check.sh, benchmarks
python3                                         tests  debian  python3              the SMTP sink, PyJWT interop, scripts/topology.sh (free ports; with --mail the relay, certificate, passwd-files), benchmarks/mail.sh's IMAP client
pip3                                            tests  debian  python3-pip          installs the PyPI peers below
curl                                            tests  debian  curl                 scripts/topology.sh, scripts/topology-check.sh
nginx                                           tests  debian  nginx                nginx auth_request tests, scripts/topology.sh, benchmarks/e2e.sh
zbarimg                                         tests  debian  zbar-tools           QR code tests (decodes Gatehouse's QR codes)
rsvg-convert                                    tests  debian  librsvg2-bin         QR code tests (rasterises the SVG)
chromium                                        tests  debian  chromium             the browser tests (Tests/browser/flows.py): the pages in a real headless Chromium
chromedriver                                    tests  debian  chromium-driver      the browser tests: the WebDriver server Selenium drives Chromium through
jwt                                             tests  pypi    pyjwt                token interoperability tests (Python module)
cryptography                                    tests  pypi    cryptography         PyJWT's EdDSA support, the SMTP sink's and topology.sh --mail's TLS certificates (Python module)
aiosmtpd                                        tests  pypi    aiosmtpd             the real SMTP server mailed codes go to; topology.sh --mail's SMTP relay (Python module)
selenium                                        tests  pypi    selenium             the browser tests' WebDriver client (Python module; always given chromedriver's path, so it never downloads a driver)
schemathesis                                    tests  pypi    schemathesis==4.32.5 the contract test (ContractTests): docs/openapi.yaml against a live node (Python module, run as `python3 -m schemathesis.cli`)
dovecot                                         tests  debian  dovecot-core         the Dovecot tests (DovecotProcess: docker/dovecot/ with the Gatehouse passdb), scripts/topology.sh --mail, benchmarks/mail.sh
/usr/lib/dovecot/imap                           tests  debian  dovecot-imapd        Dovecot's IMAP server, started by the Dovecot tests and scripts/topology.sh --mail
/usr/lib/dovecot/pop3                           tests  debian  dovecot-pop3d        Dovecot's POP3 server, started by the Dovecot tests
/usr/lib/dovecot/submission                     tests  debian  dovecot-submissiond  Dovecot's submission (SMTP AUTH) server, started by the Dovecot tests
/usr/lib/dovecot/modules/auth/libauthdb_lua.so  tests  debian  dovecot-auth-lua     the Lua passdb that asks Gatehouse (docker/dovecot/gatehouse-passdb.lua)
/usr/lib/nginx/modules/ngx_mail_module.so       tests  debian  libnginx-mod-mail    nginx's mail proxy module, for nginx in front of IMAP/POP/SMTP (tests, topology.sh --mail, benchmarks/mail.sh)
wrk                                             bench  debian  wrk                  benchmarks/e2e.sh, benchmarks/mail.sh
jq                                              bench  debian  jq                   benchmarks/e2e.sh, benchmarks/mail.sh
redis-benchmark                                 bench  debian  redis-tools          benchmarks/e2e.sh, benchmarks/redis-bench.sh, benchmarks/mail.sh
openssl                                         bench  debian  openssl              benchmarks/run-core.sh (`openssl speed`, the token benchmarks' reference)
perf                                            bench  debian  linux-perf           benchmarks/profile.sh (where a node's CPU goes per request)
gnuplot                                         bench  debian  gnuplot-nox          benchmarks/plot.sh (the charts of benchmarks/e2e.sh and benchmarks/soak.sh)
TABLE

# C libraries linked as system libraries (Package.swift's system-library targets), and the one
# the benchmarks package adds (liboath, the TOTP benchmark's reference).
build_packages=(pkg-config libhiredis-dev libssl-dev libqrencode-dev)
bench_build_packages=(liboath-dev)

usage() { sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; }

# rows GROUP…: the table's rows whose group is one of GROUP.
rows() {
  local groups=" $* "
  while read -r program group source package _; do
    [ -n "$program" ] || continue
    case "$groups" in *" $group "*) echo "$program $group $source $package" ;; esac
  done <<<"$table"
}

python=python3
present() {  # present PROGRAM SOURCE: whether it is usable now
  case "$2:$1" in
    debian:/*) [ -e "$1" ] ;;  # an absolute path: a file that is not on PATH (a service binary, a module)
    debian:*) command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/sbin/$1" ] ;;
    pypi:*) command -v "$python" >/dev/null 2>&1 && "$python" -c "import $1" >/dev/null 2>&1 ;;
  esac
}

mode=run
case "${1:-}" in
  "") ;;
  --tests) mode=tests ;;
  --bench) mode=bench ;;
  --table) echo "$table"; exit 0 ;;
  --require)
    shift
    status=0
    for wanted in "$@"; do
      program=""
      while read -r name group source package; do
        [ "$name" = "$wanted" ] && { program=$name; break; }
      done < <(rows run tests bench)
      if [ -z "$program" ]; then echo "bootstrap: $wanted is not in the table of external programs (scripts/bootstrap.sh)" >&2; status=1; continue; fi
      if ! present "$program" "$source"; then
        flag=""; [ "$group" = run ] || flag=" --$group"
        from="the Debian package '$package' (apt-get install $package)"
        [ "$source" = pypi ] && from="the PyPI package '$package' (python3 -m pip install $package)"
        echo "bootstrap: $program is missing: it comes from $from; scripts/bootstrap.sh$flag installs it" >&2
        status=1
      fi
    done
    exit $status ;;
  -h|--help) usage; exit 0 ;;
  *) echo "bootstrap: unknown option $1" >&2; usage >&2; exit 64 ;;
esac

if [ -d /opt/swift/usr/bin ] && ! command -v swift >/dev/null 2>&1; then
  export PATH="/opt/swift/usr/bin:$PATH"
fi
command -v swift >/dev/null 2>&1 || { echo "bootstrap: swift not found (expected Swift 6.3 at /opt/swift)" >&2; exit 1; }

case "$mode" in
  run) groups=(run) ;;
  tests) groups=(run tests) ;;
  bench) groups=(run tests bench) ;;
esac

debian=("${build_packages[@]}")
[ "$mode" = bench ] && debian+=("${bench_build_packages[@]}")
pypi=()
while read -r program group source package; do
  case "$source" in
    debian) debian+=("$package") ;;
    pypi) pypi+=("$program:$package") ;;
  esac
done < <(rows "${groups[@]}")

missing=()
for p in "${debian[@]}"; do
  case " ${missing[*]} " in *" $p "*) continue ;; esac
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" = 0 ] || SUDO="sudo"
  echo "bootstrap: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

for entry in "${pypi[@]}"; do
  module=${entry%%:*} package=${entry#*:}
  present "$module" pypi && continue
  echo "bootstrap: installing $package from PyPI"
  # Debian's own python3 refuses pip outside a virtual environment (PEP 668) unless told.
  "$python" -m pip install -q "$package" 2>/dev/null \
    || "$python" -m pip install -q --break-system-packages "$package"
  present "$module" pypi || { echo "bootstrap: $package installed but 'import $module' still fails with $python" >&2; exit 1; }
done
