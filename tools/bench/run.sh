#!/usr/bin/env bash
# egressd benchmark: the same client (wrk) and origin (nginx) measured direct,
# through egressd (cgroup redirect), and through haproxy, in one run, on
# loopback only. Prints a markdown table; record it in docs/benchmarks.md.
#
#   [EGRESSD_WORKERS=N] tools/bench/run.sh [SECONDS_PER_RUN]     (as root)
#
# Needs: a built tree (tools/build.sh) and tools/install-deps.sh (wrk, haproxy);
# installs nginx-light if missing.
set -euo pipefail
. "$(dirname "$0")/../require-root.sh"
cd "$(dirname "$0")/../.."
ROOT=$PWD
DUR=${1:-10}
BUILD=$ROOT/build
W=$(mktemp -d /tmp/egressd-bench.XXXXXX)
CG2=$(awk '$3=="cgroup2"{print $2; exit}' /proc/self/mounts)
CG=$CG2/egressd-bench-$$
ORIGIN_HTTP=18080 ORIGIN_TLS=18443 HAPROXY_HTTP=18081 HAPROXY_TLS=18444
PROXY_PORT=18001 DNS_PORT=18053
pids=()

cleanup() {
  set +e
  [ -d "$CG" ] && { echo 1 > "$CG/cgroup.kill"; sleep 0.3; "$BUILD/tools/egressctl" --socket "$W/sock" detach "$CG" >/dev/null 2>&1; rmdir "$CG"; }
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  [ -f "$W/nginx.pid" ] && kill "$(cat "$W/nginx.pid")" 2>/dev/null
  wait 2>/dev/null
  rm -rf "/sys/fs/bpf/egressd-bench-$$" "$W"
}
trap cleanup EXIT

command -v nginx >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light >/dev/null
cc -O2 -o "$W/connect_bench" tools/bench/connect_bench.c

# Origin: nginx on loopback, 100 B and 10 MiB payloads, TLS with a throwaway CA.
chmod 755 "$W"  # nginx workers run unprivileged
mkdir -p "$W/www"
head -c 100 /dev/zero | tr '\0' 'a' > "$W/www/small.txt"
head -c 10485760 /dev/urandom > "$W/www/large.bin"
chmod 644 "$W/www/"*
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=origin.test \
  -addext "subjectAltName=DNS:origin.test,IP:127.0.0.1" -keyout "$W/origin.key" -out "$W/origin.crt" 2>/dev/null
cat > "$W/nginx.conf" <<NGINX
worker_processes 1;
pid $W/nginx.pid;
error_log $W/nginx.err warn;
events { worker_connections 8192; }
http {
  access_log off; sendfile on; tcp_nopush on;
  keepalive_requests 10000000; keepalive_timeout 120s;
  default_type application/octet-stream;
  server { listen 127.0.0.1:$ORIGIN_HTTP backlog=4096; root $W/www; }
  server { listen 127.0.0.1:$ORIGIN_TLS ssl backlog=4096; root $W/www;
           ssl_certificate $W/origin.crt; ssl_certificate_key $W/origin.key;
           ssl_protocols TLSv1.2 TLSv1.3; }
}
NGINX
nginx -c "$W/nginx.conf"

# haproxy, the peer: HTTP mode for plain HTTP, TCP mode for TLS pass-through.
cat > "$W/haproxy.cfg" <<HAP
global
  nbthread 2
  maxconn 8000
defaults
  timeout connect 5s
  timeout client 60s
  timeout server 60s
frontend http_in
  mode http
  option http-keep-alive
  bind 127.0.0.1:$HAPROXY_HTTP
  default_backend http_origin
backend http_origin
  mode http
  http-reuse safe
  server o 127.0.0.1:$ORIGIN_HTTP
frontend tls_in
  mode tcp
  bind 127.0.0.1:$HAPROXY_TLS
  default_backend tls_origin
backend tls_origin
  mode tcp
  server o 127.0.0.1:$ORIGIN_TLS
HAP
haproxy -f "$W/haproxy.cfg" >"$W/haproxy.log" 2>&1 &
pids+=($!)

# egressd with an allow-by-default policy that denies one CIDR.
mkdir -p "$W/policies"
printf 'name: bench\ndeny_cidrs: ["127.0.0.99/32"]\n' > "$W/policies/bench.yaml"
"$BUILD/userspace/egressd" --socket "$W/sock" --state-dir "$W/state" --bpffs "/sys/fs/bpf/egressd-bench-$$" \
  --policy-dir "$W/policies" --proxy-port $PROXY_PORT --dns-upstream 127.0.0.1:9 \
  ${EGRESSD_WORKERS:+--workers "$EGRESSD_WORKERS"} --log-level warn 2>"$W/egressd.log" &
pids+=($!)
for _ in $(seq 100); do "$BUILD/tools/egressctl" --socket "$W/sock" status >/dev/null 2>&1 && break; sleep 0.1; done
mkdir "$CG"
"$BUILD/tools/egressctl" --socket "$W/sock" attach "$CG" --policy bench --instance bench >/dev/null

in_sandbox() { sh -c 'echo $$ > "$0/cgroup.procs" && exec "$@"' "$CG" "$@"; }

# wrk output -> "req/s p99" (p99 from --latency)
wrk_run() {  # where url [extra wrk args]
  local where=$1 url=$2; shift 2
  local out
  if [ "$where" = sandbox ]; then out=$(in_sandbox wrk --latency -d"${DUR}s" "$@" "$url"); else out=$(wrk --latency -d"${DUR}s" "$@" "$url"); fi
  if grep -q "Non-2xx" <<<"$out"; then echo "bench: $url answered errors:" >&2; echo "$out" >&2; exit 1; fi
  local rps p99 tput
  rps=$(awk '/Requests\/sec/{print $2}' <<<"$out")
  p99=$(awk '$1=="99%"{print $2}' <<<"$out")
  tput=$(awk '/Transfer\/sec/{print $2}' <<<"$out")
  echo "$rps $p99 $tput"
}

mbps() {  # wrk "Transfer/sec" (e.g. 812.34MB) -> MB/s
  awk -v t="$1" 'BEGIN{v=t+0; if (t ~ /GB/) v*=1024; else if (t ~ /KB/) v/=1024; printf "%.0f", v}'
}

row() {  # label direct egressd haproxy (each "value")
  printf '| %s | %s | %s | %s | %s | %s |\n' "$1" "$2" "$3" "$4" \
    "$(awk -v a="$3" -v b="$2" 'BEGIN{ if (b+0>0) printf "%.2f", a/b; else print "-" }')" \
    "$(awk -v a="$3" -v b="$4" 'BEGIN{ if (b+0>0) printf "%.2f", a/b; else print "-" }')"
}

echo "egressd benchmark: $(date -u +%F) $(nproc) CPUs, ${DUR}s per run, wrk and nginx and the proxy share the machine"
echo
echo "| workload | direct | egressd | haproxy | egressd/direct | egressd/haproxy |"
echo "|---|---|---|---|---|---|"

small=/small.txt large=/large.bin
read -r d_rps d_p99 _ <<<"$(wrk_run host "http://127.0.0.1:$ORIGIN_HTTP$small" -t2 -c50)"
read -r e_rps e_p99 _ <<<"$(wrk_run sandbox "http://127.0.0.1:$ORIGIN_HTTP$small" -t2 -c50)"
read -r h_rps h_p99 _ <<<"$(wrk_run host "http://127.0.0.1:$HAPROXY_HTTP$small" -t2 -c50)"
row "HTTP keep-alive 100 B, 2x50 conns (req/s)" "$d_rps" "$e_rps" "$h_rps"
echo "| ... p99 latency | $d_p99 | $e_p99 | $h_p99 | | |"

read -r d_rps _ <<<"$(wrk_run host "http://127.0.0.1:$ORIGIN_HTTP$small" -t2 -c50 -H 'Connection: close')"
read -r e_rps _ <<<"$(wrk_run sandbox "http://127.0.0.1:$ORIGIN_HTTP$small" -t2 -c50 -H 'Connection: close')"
read -r h_rps _ <<<"$(wrk_run host "http://127.0.0.1:$HAPROXY_HTTP$small" -t2 -c50 -H 'Connection: close')"
row "HTTP one request per connection (req/s)" "$d_rps" "$e_rps" "$h_rps"

read -r _ _ d_t <<<"$(wrk_run host "http://127.0.0.1:$ORIGIN_HTTP$large" -t1 -c1)"
read -r _ _ e_t <<<"$(wrk_run sandbox "http://127.0.0.1:$ORIGIN_HTTP$large" -t1 -c1)"
read -r _ _ h_t <<<"$(wrk_run host "http://127.0.0.1:$HAPROXY_HTTP$large" -t1 -c1)"
row "10 MiB over HTTP, 1 conn (MB/s)" "$(mbps "$d_t")" "$(mbps "$e_t")" "$(mbps "$h_t")"

read -r d_rps _ <<<"$(wrk_run host "https://127.0.0.1:$ORIGIN_TLS$small" -t2 -c50)"
read -r e_rps _ <<<"$(wrk_run sandbox "https://127.0.0.1:$ORIGIN_TLS$small" -t2 -c50)"
read -r h_rps _ <<<"$(wrk_run host "https://127.0.0.1:$HAPROXY_TLS$small" -t2 -c50)"
row "TLS pass-through keep-alive 100 B (req/s)" "$d_rps" "$e_rps" "$h_rps"

read -r _ _ d_t <<<"$(wrk_run host "https://127.0.0.1:$ORIGIN_TLS$large" -t1 -c1)"
read -r _ _ e_t <<<"$(wrk_run sandbox "https://127.0.0.1:$ORIGIN_TLS$large" -t1 -c1)"
read -r _ _ h_t <<<"$(wrk_run host "https://127.0.0.1:$HAPROXY_TLS$large" -t1 -c1)"
row "10 MiB over TLS pass-through, 1 conn (MB/s)" "$(mbps "$d_t")" "$(mbps "$e_t")" "$(mbps "$h_t")"

N=200000
read -r refused_ns _ <<<"$("$W/connect_bench" 127.0.0.1 9 $N)"
read -r denied_ns _ <<<"$(in_sandbox "$W/connect_bench" 127.0.0.99 80 $N)"
echo
echo "| connect() cost | ns per call |"
echo "|---|---|"
echo "| to a closed local port (ECONNREFUSED), outside any sandbox | $refused_ns |"
echo "| kernel deny_cidrs (EPERM) inside the sandbox | $denied_ns |"
echo "| ratio deny / refused | $(awk -v a="$denied_ns" -v b="$refused_ns" 'BEGIN{printf "%.2f", a/b}') |"
