#!/bin/bash
# Connection setup rate and the broker's CPU per connection, against a fresh robust-server.
#   bench/scripts/conn-cpu.sh [ROOT] [RUNS] [CLIENTS] [CONCURRENCY]
# ROOT is the checkout whose bin/robust-server is started (default: this one; a built copy of an
# older tree compares before and after); the generator is always this checkout's robust-bench.
# Binds 127.0.0.1 on free ports, stops only the server it started (by PID), removes its data dir.
set -euo pipefail
HERE=$(cd "$(dirname "$0")/../.." && pwd)
ROOT=${1:-$HERE}
RUNS=${2:-3}
CLIENTS=${3:-5000}
CONC=${4:-200}
D=$(mktemp -d /tmp/robust-bench-conn-cpu-XXXX)
(cd "$D" && ROBUSTMQ_AUTH_ALLOW_ANONYMOUS=true exec node "$ROOT/bin/robust-server" start --data-dir "$D/data" \
  --bind-host 127.0.0.1 --mqtt-port 0 --kafka-port 0 --http-port 0 --grpc-port 0 --mqtts-port 0 --ws-port 0 --wss-port 0 \
  >"$D/out.log" 2>&1) &
SP=$!
trap 'kill $SP 2>/dev/null; wait $SP 2>/dev/null; rm -rf "$D"' EXIT
for _ in $(seq 300); do grep -q '"listening"' "$D/out.log" 2>/dev/null && break; sleep 0.1; done
PORT=$(grep '"listening"' "$D/out.log" | head -1 | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).ports.mqtt))')
sleep 1
ticks() { awk '{print $14 + $15}' "/proc/$SP/stat"; }
hz=$(getconf CLK_TCK)
for r in $(seq "$RUNS"); do
  a=$(ticks)
  out=$(timeout 300 "$HERE/bin/robust-bench" mqtt conn -p "$PORT" -c "$CLIENTS" --concurrency "$CONC" --json --no-progress)
  b=$(ticks)
  echo "$out" | node -e '
    let s = ""; process.stdin.on("data", (d) => (s += d)).on("end", () => {
      const j = JSON.parse(s), [a, b, hz, n, r] = process.argv.slice(1).map(Number);
      console.log(`run ${r}: ${j.connections.rate} conn/s, ${j.errorCount} errors, generator ${j.cpu.percentOfOneCore} % of a core, ` +
        `broker ${Math.round(((b - a) / hz) * 1e6 / n)} µs CPU per connection (connect and close)`);
    });' "$a" "$b" "$hz" "$CLIENTS" "$r"
done
echo "load average $(cut -d' ' -f1-3 /proc/loadavg)"
