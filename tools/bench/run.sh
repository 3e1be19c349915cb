#!/usr/bin/env bash
# egressd benchmark: the same client (wrk) and origin (nginx) measured direct,
# through egressd (cgroup redirect), and through haproxy, in one run, on
# loopback only. Prints a markdown table; record it in docs/benchmarks.md.
#
#   [EGRESSD_WORKERS=N] [BENCH_TLS=1] [BENCH_PLAIN=0] tools/bench/run.sh [SECONDS_PER_RUN]   (as root)
#
# BENCH_TLS=1 adds the TLS interception rows (egressd intercepting, haproxy
# terminating TLS with generated certificates, squid ssl-bump, direct);
# BENCH_PLAIN=0 leaves out the plain and pass-through rows.
# With BENCH_TLS=1: BENCH_TLS_ROWS picks rows ("ka inject hs names bulk idle"),
# NAMES_ROUNDS and NAMES_PROCS shape the new-names row, BULK_ROUNDS the 10 MiB
# row (the setups take turns in each round), BENCH_COUNT=1 adds
# perf's count of the proxies' context switches and system calls per new
# name, BENCH_HOLD=SECONDS keeps the setups up afterwards (tls_rows.sh).
# EGRESSD_BIN runs another egressd binary (an A/B of two builds).
#
# Needs: a built tree (tools/build.sh) and tools/install-deps.sh (wrk, haproxy);
# installs nginx-light if missing, and squid-openssl and iptables for BENCH_TLS=1.
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
HAPROXY_MITM=18445 HAPROXY_INJECT=18446 SQUID_HTTP=18128 SQUID_BUMP=18129
SQUID_UID=4242  # the squid rows' clients run as this uid: iptables sends its origin traffic to squid
BENCH_TLS=${BENCH_TLS:-0} BENCH_PLAIN=${BENCH_PLAIN:-1}
CG_TLS=$CG2/egressd-bench-tls-$$
pids=()

cleanup() {
  set +e
  for g in "$CG" "$CG_TLS"; do
    [ -d "$g" ] && { echo 1 > "$g/cgroup.kill"; sleep 0.3; "$BUILD/tools/egressctl" --socket "$W/sock" detach "$g" >/dev/null 2>&1; rmdir "$g"; }
  done
  [ -n "${SQUID_NAT_RULE:-}" ] && iptables -t nat -D OUTPUT $SQUID_NAT_RULE
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  [ -f "$W/nginx.pid" ] && kill "$(cat "$W/nginx.pid")" 2>/dev/null
  wait 2>/dev/null
  rm -rf "/sys/fs/bpf/egressd-bench-$$" "$W"
}
trap cleanup EXIT

command -v nginx >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light >/dev/null
if [ "$BENCH_TLS" = 1 ]; then
  command -v squid >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq squid-openssl >/dev/null
  command -v iptables >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iptables >/dev/null
  cc -O2 -shared -fPIC -o "$W/noresume.so" tools/bench/noresume.c -ldl -lssl
  cc -O2 -o "$W/new_names_bench" tools/bench/new_names_bench.c -lssl -lcrypto
  cc -O2 -o "$W/bench_dns" tools/bench/bench_dns.c
fi
cc -O2 -o "$W/connect_bench" tools/bench/connect_bench.c

# Origin: nginx on loopback, 100 B and 10 MiB payloads, TLS with a leaf of a
# throwaway CA (the CA is the intercepting proxies' upstream trust).
chmod 755 "$W"  # nginx workers run unprivileged
mkdir -p "$W/www"
head -c 100 /dev/zero | tr '\0' 'a' > "$W/www/small.txt"
head -c 10485760 /dev/urandom > "$W/www/large.bin"
chmod 644 "$W/www/"*
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj "/CN=egressd bench origin CA" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
  -keyout "$W/origin-ca.key" -out "$W/origin-ca.crt" 2>/dev/null
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=origin.test \
  -keyout "$W/origin.key" -out "$W/origin.csr" 2>/dev/null
printf 'subjectAltName=DNS:origin.test,DNS:*.origin.test,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n' > "$W/origin.ext"
openssl x509 -req -in "$W/origin.csr" -CA "$W/origin-ca.crt" -CAkey "$W/origin-ca.key" -CAcreateserial -days 1 \
  -extfile "$W/origin.ext" -out "$W/origin.crt" 2>/dev/null
chmod 644 "$W/origin-ca.crt"
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

# egressd with an allow-by-default policy that denies one CIDR. Its resolver
# is the bench's DNS (tls_rows.sh starts it; nothing else resolves names), its
# extra upstream root the origin's CA.
mkdir -p "$W/policies"
mkdir -m 0700 "$W/secrets"  # the injection row's credential (tls_rows.sh)
printf 'name: bench\ndeny_cidrs: ["127.0.0.99/32"]\n' > "$W/policies/bench.yaml"
"${EGRESSD_BIN:-$BUILD/userspace/egressd}" --socket "$W/sock" --state-dir "$W/state" --bpffs "/sys/fs/bpf/egressd-bench-$$" \
  --policy-dir "$W/policies" --proxy-port $PROXY_PORT --dns-upstream 127.0.0.1:$DNS_PORT \
  --upstream-ca "$W/origin-ca.crt" --secrets-dir "$W/secrets" \
  ${EGRESSD_WORKERS:+--workers "$EGRESSD_WORKERS"} --log-level warn 2>"$W/egressd.log" &
EGRESSD_PID=$!
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

if [ "$BENCH_PLAIN" = 1 ]; then
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

# The egress backstop (cgroup_skb/egress) runs on every packet a sandbox
# sends. Its cost, in the same run: the sandbox workloads with it attached,
# then with its link detached; and the program's own time per packet from
# the kernel's BPF run-time statistics.
BPFTOOL=$(command -v bpftool || echo /usr/sbin/bpftool)
EGRESS_LINK=$(ls -d /sys/fs/bpf/egressd-bench-$$/links/*/egress)
egress_prog=$("$BPFTOOL" link show pinned "$EGRESS_LINK" -j | jq -r .prog_id)
stats_was=$(cat /proc/sys/kernel/bpf_stats_enabled)
echo 1 > /proc/sys/kernel/bpf_stats_enabled
prog_stat() { "$BPFTOOL" prog show id "$egress_prog" -j | jq -r "(.run_time_ns // 0), (.run_cnt // 0)" | paste -sd' '; }
read -r t0 c0 <<<"$(prog_stat)"
read -r on_rps on_p99 _ <<<"$(wrk_run sandbox "http://127.0.0.1:$ORIGIN_HTTP$small" -t2 -c50)"
read -r _ _ on_t <<<"$(wrk_run sandbox "http://127.0.0.1:$ORIGIN_HTTP$large" -t1 -c1)"
read -r t1 c1 <<<"$(prog_stat)"
echo "$stats_was" > /proc/sys/kernel/bpf_stats_enabled
"$BPFTOOL" link detach pinned "$EGRESS_LINK"
read -r off_rps off_p99 _ <<<"$(wrk_run sandbox "http://127.0.0.1:$ORIGIN_HTTP$small" -t2 -c50)"
read -r _ _ off_t <<<"$(wrk_run sandbox "http://127.0.0.1:$ORIGIN_HTTP$large" -t1 -c1)"
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (b+0>0) printf "%.2f", a/b; else print "-" }'; }
echo
echo "| egress backstop (sandbox side, through egressd) | backstop on | backstop off | on/off |"
echo "|---|---|---|---|"
echo "| HTTP keep-alive 100 B, 2x50 conns (req/s) | $on_rps | $off_rps | $(ratio "$on_rps" "$off_rps") |"
echo "| ... p99 latency | $on_p99 | $off_p99 | |"
echo "| 10 MiB over HTTP, 1 conn (MB/s) | $(mbps "$on_t") | $(mbps "$off_t") | $(ratio "$(mbps "$on_t")" "$(mbps "$off_t")") |"
echo "| program time per packet (ns, bpf_stats) | $(awk -v t=$((t1 - t0)) -v c=$((c1 - c0)) 'BEGIN{ if (c>0) printf "%.0f (%d packets)", t/c, c; else print "-" }') | | |"
fi  # BENCH_PLAIN

if [ "$BENCH_TLS" = 1 ]; then
  . tools/bench/tls_rows.sh
fi
