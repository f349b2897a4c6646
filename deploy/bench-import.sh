#!/usr/bin/env bash
# Peak memory and speed of `plantmeter import` on a large file: a CSV of ROWS rows (default 10 000 000;
# POINTS counters read every 5 minutes from 2025-01-01 local) is written by awk (streaming), then imported
# by the release binary under /usr/bin/time -v. Prints rows/s and the peak RSS (target: < 64 MB at any
# size, >= 1 M rows/s). `plantmeter bench import` times the same path but builds its CSV in memory, so its
# own RSS says nothing about the import's.
#   deploy/bench-import.sh [ROWS] [POINTS]
set -euo pipefail
cd "$(dirname "$0")/.."
rows=${1:-10000000}
points=${2:-200}
bin=${BIN:-target/release/plantmeter}
[ -x "$bin" ] || cargo build --release -p plantmeter-agent
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
meters=$(( (points + 9) / 10 ))
{
  printf '[gateway]\nid = "bench"\nsite = "bench"\ndata_dir = "%s/store"\n\n[mqtt]\nurl = "mqtt://127.0.0.1:1883"\n\n' "$dir"
  printf '[[bus]]\nname = "line-1"\ntransport = "tcp"\naddress = "127.0.0.1:5020"\n'
  for ((m = 0; m < meters; m++)); do
    printf '\n[[meter]]\nname = "m%d"\nbus = "line-1"\nunit_id = %d\npoll_interval_s = 300\n' "$m" $((m % 247 + 1))
    for ((p = 0; p < 10 && m * 10 + p < points; p++)); do
      printf '  [[meter.point]]\n  name = "p%d"\n  register = "holding"\n  address = %d\n  type = "f64"\n  unit = "kWh"\n  kind = "counter"\n' "$p" $((p * 4))
    done
  done
  printf '\n[audit]\ntimezone = "+08:00"\nbaseline = ["2025-01-01", "2025-07-01"]\ngranularity = "day"\ngrid_co2_t_per_mwh = 0.5703\nproduction = { point = "m0.p0", unit = "t" }\n'
  for ((i = 1; i < points; i++)); do
    printf '  [[audit.input]]\n  point = "m%d.p%d"\n  carrier = "electricity"\n' $((i / 10)) $((i % 10))
  done
} > "$dir/bench.toml"
# Local times (read in [audit] timezone), every point at each 5-minute step.
awk -v rows="$rows" -v points="$points" 'BEGIN {
  print "ts,meter,point,value"
  t0 = mktime("2025 01 01 00 00 00") ; n = 0
  for (s = 0; n < rows; s++) {
    ts = strftime("%Y-%m-%d %H:%M:%S", t0 + s * 300)
    for (i = 0; i < points && n < rows; i++) {
      printf "%s,m%d,p%d,%.3f\n", ts, int(i / 10), i % 10, s * (1 + i * 0.01); n++
    }
  }
}' > "$dir/bench.csv"
size=$(du -m "$dir/bench.csv" | cut -f1)
echo "bench import: $rows rows, $points points, ${size} MB CSV"
/usr/bin/time -v "$bin" import --config "$dir/bench.toml" --csv "$dir/bench.csv" 2> "$dir/time.txt" | sed 's/^/  /'
secs=$(awk -F': ' '/Elapsed \(wall clock\)/ { n = split($2, a, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + a[i]; print s }' "$dir/time.txt")
rss=$(awk -F': ' '/Maximum resident set size/ { print $2 }' "$dir/time.txt")
awk -v r="$rows" -v s="$secs" -v k="$rss" 'BEGIN { printf "  %.1f s, %.0f rows/s, peak RSS %.1f MB\n", s, r / s, k / 1024 }'
