#!/usr/bin/env bash
# The benchmarks' charts, drawn with gnuplot from plain TSV files.
#
#   benchmarks/plot.sh [--format svg|png|both] e2e DIR
#   benchmarks/plot.sh [--format svg|png|both] soak DIR
#   benchmarks/plot.sh curve FILE
#
# e2e DIR: from DIR/data/ (written by benchmarks/e2e.sh --charts DIR), draws
#   DIR/e2e-latency-<a>-vs-<b>.svg  one per measured line: the latency percentile curve of every
#                                 repetition, Gatehouse's series against its reference's, on an
#                                 HdrHistogram-style axis (x = 1/(1-p), log scale: 0%, 90%, 99%, …)
#   DIR/e2e-throughput.svg        one panel per line: its two series' throughput (or the cost it
#                                 compares, such as CPU µs per operation) per repetition
#   from  e2e-lines.tsv           MEASURE, GATEHOUSE_SERIES, REFERENCE_SERIES, UNIT (one line each)
#         e2e-throughput.tsv      SERIES, REP, VALUE
#         e2e-latency-<series>-<rep>.tsv  PERCENTILE (0…100), MILLISECONDS
# soak DIR: from DIR/data/soak-samples.tsv (SECONDS, RSS_KIB, FDS, THREADS; "#" starts a
#   comment; written by benchmarks/soak.sh --charts DIR) draws DIR/soak-memory.svg: the node's
#   resident memory and open descriptors over the soak, the two windows its verdict compares shaded.
# curve FILE: prints the latency curve (PERCENTILE<TAB>MILLISECONDS) of one run's output: a
#   `gatehouse load --json` report (the kind with the most operations), wrk's output with
#   benchmarks/wrk-percentiles.lua, or redis-benchmark's (without --csv: "Latency by percentile
#   distribution").
#
# --format: SVG (default), PNG (gnuplot's pngcairo), or both. gnuplot is the Debian package
# gnuplot-nox (`scripts/bootstrap.sh --bench`). Exit 2 when the data is missing or gnuplot fails.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
format=svg
usage() { sed -n '2,26p' "$0" | sed 's/^# \{0,1\}//'; }
die() { echo "plot: $*" >&2; exit 2; }
while [ $# -gt 0 ]; do
  case "$1" in
    --format) format="$2"; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) break ;;
  esac
done
case "$format" in svg|png|both) ;; *) echo "plot: --format must be svg, png or both" >&2; exit 64 ;; esac
[ $# -ge 2 ] || { usage >&2; exit 64; }
command=$1 target=$2

# --- curve FILE ---------------------------------------------------------------------------------
if [ "$command" = curve ]; then
  [ -s "$target" ] || die "$target is missing or empty"
  if grep -q '^Latency by percentile distribution:' <(tr '\r' '\n' <"$target"); then
    # redis-benchmark: "99.219% <= 0.751 milliseconds (cumulative count 19850)"
    tr '\r' '\n' <"$target" | awk '
      /^Latency by percentile distribution:/ { on = 1; next }
      on && /^[0-9.]+% <= [0-9.]+ milliseconds/ { p = $1; sub(/%$/, "", p); print p "\t" $3; next }
      on { exit }'
  elif grep -q $'^curve\t' "$target"; then
    awk -F'\t' '$1 == "curve" { print $2 "\t" $3 }' "$target"  # wrk with wrk-percentiles.lua
  elif head -c 1 "$target" | grep -q '{'; then
    command -v jq >/dev/null || die "jq is needed to read $target"
    jq -r '[.kinds | to_entries[] | select(.value.count > 0)] | max_by(.value.count) | .value.latency_curve_ms // [] | .[] | @tsv' "$target"
  else
    die "$target is none of: gatehouse load --json, wrk with wrk-percentiles.lua, redis-benchmark's text output"
  fi
  exit 0
fi

[ -d "$target/data" ] || die "$target/data does not exist"
"$root/scripts/bootstrap.sh" --require gnuplot || exit 2
dir="$(cd "$target" && pwd)" data="$(cd "$target/data" && pwd)"

# gq TEXT: TEXT as a gnuplot double-quoted string.
gq() { local s=${1//\\/\\\\}; s=${s//\"/\\\"}; printf '"%s"' "$s"; }

# draw NAME WIDTH HEIGHT: runs the gnuplot script on stdin once per format, writing DIR/NAME.svg
# and/or DIR/NAME.png.
draw() {
  local name=$1 width=$2 height=$3 script ext
  script=$(cat)
  for ext in svg png; do
    [ "$format" = both ] || [ "$format" = "$ext" ] || continue
    local terminal="svg size $width,$height dynamic font 'Sans,13' background rgb 'white'"
    [ "$ext" = png ] && terminal="pngcairo size $width,$height font 'Sans,11' background rgb 'white'"
    gnuplot 2>"$dir/.gnuplot.err" <<EOF || die "gnuplot failed on $name.$ext: $(head -c 600 "$dir/.gnuplot.err")"
set terminal $terminal
set output $(gq "$dir/$name.$ext")
set termoption noenhanced
set encoding utf8
$script
unset output
EOF
    rm -f "$dir/.gnuplot.err"
    echo "$dir/$name.$ext"
  done
}

gatehouse_color="#1f5fbf" reference_color="#d9480f"

# --- e2e DIR ------------------------------------------------------------------------------------
if [ "$command" = e2e ]; then
  [ -s "$data/e2e-lines.tsv" ] || die "$data/e2e-lines.tsv is missing"
  rm -f "$dir"/e2e-*.svg "$dir"/e2e-*.png
  # A curve's x is 1/(1-p): 50% at 2, 90% at 10, 99% at 100, …; the 100% point (the maximum) has
  # no place on that axis and is left out, as in HdrHistogram's own plots.
  # (A tic label is a format for its position: % is written %%.)
  xtics='("0%%" 1, "50%%" 2, "90%%" 10, "99%%" 100, "99.9%%" 1000, "99.99%%" 1e4, "99.999%%" 1e5, "99.9999%%" 1e6)'
  # Latency tics at 1, 2, 5 × each power of ten from 1 µs to 100 s (a log axis labels only the powers).
  ytics="($(awk 'BEGIN { for (e = -3; e <= 5; e++) for (i = 1; i <= 3; i++) { v = (i == 1 ? 1 : i == 2 ? 2 : 5) * 10 ^ e; printf "%s\"%g\" %g", (e == -3 && i == 1 ? "" : ", "), v, v } }'))"
  # series SERIES: its repetitions that have a curve, in order.
  reps_of() { find "$data" -maxdepth 1 -name "e2e-latency-$1-*.tsv" -size +0 | sed "s|.*/e2e-latency-$1-||; s|\.tsv$||" | grep -E '^[0-9]+$' | sort -n || true; }
  while IFS=$'\t' read -r measure a b unit; do
    [ -n "$a" ] || continue
    plots=() max_p=0
    for role in gatehouse reference; do
      series=$a color=$gatehouse_color label="Gatehouse"
      [ "$role" = reference ] && { series=$b color=$reference_color label="reference"; }
      first=1 reps=$(reps_of "$series" | tr '\n' ' ') n=$(reps_of "$series" | wc -l)
      for rep in $reps; do
        file="$data/e2e-latency-$series-$rep.tsv"
        title="notitle"
        [ "$first" = 1 ] && title="title $(gq "$label: $series ($n rep$([ "$n" = 1 ] || echo s))")"
        first=0
        plots+=("$(gq "$file") using (\$1 < 100 ? 100 / (100 - \$1) : NaN):2 with lines lw 2 lc rgb '$color' $title")
        p=$(awk -F'\t' '$1 < 100 && $1 > m { m = $1 } END { print m + 0 }' "$file")
        max_p=$(awk -v a="$max_p" -v b="$p" 'BEGIN { print (b > a ? b : a) }')
      done
    done
    [ "${#plots[@]}" -gt 0 ] || continue  # a line without latencies (a cost per operation)
    xmax=$(awk -v p="$max_p" 'BEGIN { x = 100 / (100 - p); m = 10; while (m < x * 1.01 && m < 1e7) m *= 10; print m }')
    draw "e2e-latency-$a-vs-$b" 1100 650 <<EOF
set title $(gq "$measure")
set xlabel "percentile (x = 1/(1-p), log scale; the maximum is left out)"
set ylabel "latency (ms, log scale)"
set logscale xy
set xrange [1:$xmax]
set xtics $xtics
set ytics $ytics
set format y "%g"
set grid xtics ytics mytics lc rgb '#dddddd'
set key top left box opaque width 1
set mytics 10
plot $(IFS=,; echo "${plots[*]}")
EOF
  done <"$data/e2e-lines.tsv"

  # Throughput: a panel per line, two columns.
  lines=$(grep -c . "$data/e2e-lines.tsv")
  rows=$(( (lines + 1) / 2 ))
  panels=""
  while IFS=$'\t' read -r measure a b unit; do
    [ -n "$a" ] || continue
    for series in "$a" "$b"; do
      awk -F'\t' -v s="$series" '$1 == s && $2 > 0 && $3 != "" { print $2 "\t" $3 }' "$data/e2e-throughput.tsv" | sort -n >"$data/.tp-$series"
    done
    title=$(gq "$measure")
    case "$unit" in
      */s) ylabel="throughput (${unit/#\//operations/})" ;;
      *) ylabel="$unit per operation" ;;  # a line that compares a cost, such as CPU µs
    esac
    panels+="
set title ${title/ vs / \\nvs }
set ylabel $(gq "$ylabel")
plot $(gq "$data/.tp-$a") using 1:2 with linespoints lw 2 pt 7 ps 1 lc rgb '$gatehouse_color' title $(gq "Gatehouse: $a"), \\
     $(gq "$data/.tp-$b") using 1:2 with linespoints lw 2 pt 5 ps 1 lc rgb '$reference_color' title $(gq "reference: $b")
"
  done <"$data/e2e-lines.tsv"
  draw e2e-throughput 1300 $((rows * 380 + 40)) <<EOF
set multiplot layout $rows,2 title "Each line's two series per repetition (one point per run; the order alternates between repetitions)"
set xtics 1
set format x "rep %.0f"
set xrange [0.5:$(awk -F'\t' '$2 > m { m = $2 } END { print m + 0.5 }' "$data/e2e-throughput.tsv")]
set yrange [0:*]
set offsets 0, 0, graph 0.1, 0
set grid ytics lc rgb '#dddddd'
set key below horizontal
set format y "%.0f"
$panels
unset multiplot
EOF
  rm -f "$data"/.tp-*
  exit 0
fi

# --- soak DIR -----------------------------------------------------------------------------------
if [ "$command" = soak ]; then
  samples="$data/soak-samples.tsv"
  [ -s "$samples" ] || die "$samples is missing"
  last=$(awk -F'\t' '$1 ~ /^[0-9]+$/ { t = $1 } END { print t + 0 }' "$samples")
  draw soak-memory 1100 600 <<EOF
set title $(gq "Soak: one node's resident memory and open descriptors over $(awk -v s="$last" 'BEGIN { printf "%.1f", s / 60 }') minutes of load and slow or malformed clients")
set xlabel "time (minutes)"
set ylabel "resident memory, VmRSS (MiB)"
set y2label "open file descriptors"
set ytics nomirror
set y2tics
set xrange [0:$(awk -v s="$last" 'BEGIN { print s / 60 }')]
set yrange [0:*]
set y2range [0:*]
set offsets 0, 0, graph 0.12, 0
set grid xtics ytics lc rgb '#dddddd'
set key below horizontal
# The windows the verdict compares: minute 2 (after warm-up) and the last minute.
set object 1 rect from 1, graph 0 to 2, graph 1 fc rgb '#e8e8e8' fs solid 0.6 noborder behind
set object 2 rect from $(awk -v s="$last" 'BEGIN { print (s - 60) / 60 }'), graph 0 to $(awk -v s="$last" 'BEGIN { print s / 60 }'), graph 1 fc rgb '#e8e8e8' fs solid 0.6 noborder behind
set label 1 "minute 2" at 1.5, graph 0.04 center
set label 2 "last minute" at $(awk -v s="$last" 'BEGIN { print (s - 30) / 60 }'), graph 0.04 center
plot $(gq "$samples") using (\$1 / 60):(\$2 / 1024) with linespoints lw 2 pt 7 ps 0.6 lc rgb '$gatehouse_color' title "VmRSS (MiB, left)", \\
     $(gq "$samples") using (\$1 / 60):3 axes x1y2 with lines lw 1.5 dt 2 lc rgb '#555555' title "open descriptors (right)"
EOF
  exit 0
fi

echo "plot: unknown command $command" >&2; usage >&2; exit 64
