# Shell helpers the benchmark scripts share; source it after setting `name` (the script's name
# for messages), `work` (its scratch directory) and `pids=()` (what teardown stops).
#
#   name=cluster work="$(mktemp -d …)" pids=(); . "$(dirname "$0")/lib.sh"
#
# Sets the EXIT/INT/TERM traps: on exit every pid in `pids` gets SIGTERM, then SIGKILL after 5 s;
# `work` is removed after a clean run and kept (and named) otherwise.

bench_teardown() {
  local rc=$? pid
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
    kill -KILL "$pid" 2>/dev/null || true
  done
  if [ "$rc" = 0 ]; then rm -rf "$work"; else echo "$name: logs kept in $work" >&2; fi
}
trap bench_teardown EXIT
trap 'exit 130' INT TERM

die() { echo "$name: $*" >&2; exit 2; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
wait_for() {  # wait_for SECONDS command…
  local limit=$1; shift
  for _ in $(seq 1 $((limit * 10))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
  return 1
}
bench_hz=$(getconf CLK_TCK)
cpu_of() {  # cpu_of PID… → user+system seconds
  local total=0 pid f
  for pid in "$@"; do
    f=$(sed 's/^.*) //' "/proc/$pid/stat" 2>/dev/null) || continue
    total=$(awk -v t="$total" -v f="$f" -v hz="$bench_hz" 'BEGIN { split(f, a, " "); printf "%.3f", t + (a[12] + a[13]) / hz }')
  done
  echo "$total"
}
median() { sort -g | awk '{ a[NR] = $1 } END { if (NR % 2) print a[(NR + 1) / 2]; else printf "%.6f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
