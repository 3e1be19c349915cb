# shellcheck shell=bash
# TLS interception rows of tools/bench/run.sh, sourced by it with BENCH_TLS=1
# (it provides W, BUILD, DUR, the ports, CG_TLS, EGRESSD_PID, pids, mbps).
#
# Four ways to the same nginx origin (https://origin.test:$ORIGIN_TLS, a leaf
# of $W/origin-ca.crt), the same clients:
#   direct   the client talks TLS to nginx;
#   egressd  the client runs in a sandbox whose policy intercepts every name;
#            egressd verifies the origin against --upstream-ca;
#   haproxy  TLS termination with certificates generated per SNI
#            (generate-certificates) and a verified upstream, addressed
#            directly (as a reverse proxy, like the plain haproxy rows);
#   (inject) egressd and haproxy again, each adding one request header
#            (a handler's set_header from a secret; http-request set-header);
#   squid    ssl-bump (peek the SNI, bump, certificates generated per SNI),
#            intercepting: the client runs as uid $SQUID_UID and an iptables
#            REDIRECT rule for that uid alone sends its origin traffic to squid.
# Clients resolve names from a private /etc/hosts (a mount namespace); egressd
# resolves through bench_dns (tools/bench/bench_dns.c: every *.origin.test is
# 127.0.0.1, a few microseconds of CPU per question); squid reads
# a hosts file listing every name its rows use.
T=$W/tls
ROWS=" ${BENCH_TLS_ROWS:-ka inject hs names bulk idle} "  # a subset, e.g. BENCH_TLS_ROWS="hs idle"
mkdir -p "$T" "$T/ready"
chmod 755 "$T"
chmod 1777 "$T/ready"  # the squid rows' client writes its readiness file here
has_row() { [[ $ROWS == *" $1 "* ]]; }
PY=/usr/bin/python3  # not a per-user shim: the squid rows' clients run as another uid

wait_for() {  # what seconds command...: poll until the command succeeds
  local what=$1 tries=$(($2 * 10)); shift 2
  for _ in $(seq "$tries"); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "bench: $what not ready" >&2
  return 1
}

printf '127.0.0.1 localhost\n127.0.0.1 origin.test\n' > "$T/hosts"
chmod 644 "$T/hosts"
"$W/bench_dns" "$DNS_PORT" origin.test > "$T/dns.out" 2>&1 &
pids+=($!)
wait_for "bench DNS" 5 grep -q ready "$T/dns.out"

# The peers' MITM CA and haproxy's default certificate (RSA-2048, the
# configuration the peers were measured with in their own benchmark).
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj "/CN=egressd bench peers MITM CA" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
  -keyout "$T/mitm-ca.key" -out "$T/mitm-ca.crt" 2>/dev/null
cat "$T/mitm-ca.key" "$T/mitm-ca.crt" > "$T/mitm-ca-bundle.pem"
openssl req -new -newkey rsa:2048 -nodes -subj /CN=bench-default -keyout "$T/default.key" -out "$T/default.csr" 2>/dev/null
openssl x509 -req -in "$T/default.csr" -CA "$T/mitm-ca.crt" -CAkey "$T/mitm-ca.key" -CAcreateserial -days 1 \
  -out "$T/default.crt" 2>/dev/null
cat "$T/default.crt" "$T/default.key" > "$T/default.pem"
chmod 644 "$T"/*.pem "$T"/*.crt "$T"/*.key

cat > "$T/haproxy.cfg" <<HAP
global
  nbthread 2
  maxconn 8000
  tune.ssl.ssl-ctx-cache-size 1000
  ssl-server-verify required
defaults
  mode http
  option http-keep-alive
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  timeout http-keep-alive 60s
frontend mitm_in
  bind 127.0.0.1:$HAPROXY_MITM ssl crt $T/default.pem ca-sign-file $T/mitm-ca-bundle.pem generate-certificates
  default_backend mitm_origin
backend mitm_origin
  http-reuse safe
  server o 127.0.0.1:$ORIGIN_TLS ssl verify required ca-file $W/origin-ca.crt sni ssl_fc_sni
frontend mitm_inject
  bind 127.0.0.1:$HAPROXY_INJECT ssl crt $T/default.pem ca-sign-file $T/mitm-ca-bundle.pem generate-certificates
  http-request set-header Authorization "Bearer bench-token-0123456789abcdef"
  default_backend mitm_origin
HAP
haproxy -f "$T/haproxy.cfg" > "$T/haproxy.log" 2>&1 &
HAPROXY_MITM_PID=$!
pids+=($!)

# squid: every name the new-hostname row will use is in its hosts file (it
# resolves each intercepted Host/SNI; without an answer new names stall).
# NAMES_ROUNDS (default 3): the row runs that many times, the setups taking
# turns, and reports each setup's median (the VM's speed drifts within a run).
NAMES_PROCS=${NAMES_PROCS:-4} NAMES_MAX=$((DUR * 1000)) NAMES_ROUNDS=${NAMES_ROUNDS:-3}
{
  echo "127.0.0.1 origin.test"
  awk -v r="$NAMES_ROUNDS" -v p="$NAMES_PROCS" -v m="$NAMES_MAX" 'BEGIN{for(k=1;k<=r;k++) for(i=0;i<p;i++) for(n=0;n<m;n++) printf "127.0.0.1 sq%dr%d-%d.origin.test\n", k, i, n}'
} > "$T/squid-hosts"
mkdir -p "$T/squid"
/usr/lib/squid/security_file_certgen -c -s "$T/squid/ssl_db" -M 16MB >/dev/null
touch "$T/squid/cache.log"
chown -R proxy:proxy "$T/squid"
cat > "$T/squid.conf" <<SQUID
http_port 127.0.0.1:$SQUID_HTTP
https_port 127.0.0.1:$SQUID_BUMP intercept ssl-bump tls-cert=$T/mitm-ca.crt tls-key=$T/mitm-ca.key generate-host-certificates=on dynamic_cert_mem_cache_size=16MB
sslcrtd_program /usr/lib/squid/security_file_certgen -s $T/squid/ssl_db -M 16MB
sslcrtd_children 5 startup=1 idle=1
acl step1 at_step SslBump1
ssl_bump peek step1
ssl_bump bump all
tls_outgoing_options cafile=$W/origin-ca.crt
acl localnet src 127.0.0.0/8
http_access allow localnet
http_access deny all
cache deny all
cache_mem 8 MB
access_log none
cache_store_log none
cache_log $T/squid/cache.log
pid_filename $T/squid/squid.pid
coredump_dir $T/squid
cache_effective_user proxy
dns_nameservers 127.0.0.1
hosts_file $T/squid-hosts
max_filedescriptors 16384
shutdown_lifetime 1 seconds
visible_hostname egressd-bench
via off
forwarded_for delete
SQUID
squid -N -f "$T/squid.conf" > "$T/squid.out" 2>&1 &
SQUID_PID=$!
pids+=($!)
SQUID_NAT_RULE="-p tcp -d 127.0.0.1 --dport $ORIGIN_TLS -m owner --uid-owner $SQUID_UID -j REDIRECT --to-ports $SQUID_BUMP"
# shellcheck disable=SC2086
iptables -t nat -A OUTPUT $SQUID_NAT_RULE

# egressd: a second sandbox whose policy intercepts every name; its handler
# `inject` (bound only during the inject row) adds a credential from a secret.
printf 'name: benchtls\ntls: {intercept: ["*"]}\nhandlers:\n  inject:\n    - set_header: {name: Authorization, value: "Bearer {{secret:bench_token}}"}\n' \
  > "$W/policies/benchtls.yaml"
(umask 077 && echo "bench-token-0123456789abcdef" > "$W/secrets/bench_token")
mkdir "$CG_TLS"
"$BUILD/tools/egressctl" --socket "$W/sock" attach "$CG_TLS" --policy benchtls --instance benchtls >/dev/null
"$BUILD/tools/egressctl" --socket "$W/sock" ca benchtls > "$T/sandbox-ca.pem"

# as WHERE: run a command as the client of one of the four setups
as() {
  local where=$1; shift
  local with_hosts=(unshare -m sh -c 'mount --bind "$0" /etc/hosts && exec "$@"' "$T/hosts")
  case $where in
    egressd*) sh -c 'echo $$ > "$0/cgroup.procs" && exec "$@"' "$CG_TLS" "${with_hosts[@]}" "$@" ;;
    squid) "${with_hosts[@]}" setpriv --reuid="$SQUID_UID" --regid="$SQUID_UID" --clear-groups "$@" ;;
    *) "${with_hosts[@]}" "$@" ;;
  esac
}
port_of() {
  case $1 in haproxy) echo "$HAPROXY_MITM" ;; haproxy_inject) echo "$HAPROXY_INJECT" ;; *) echo "$ORIGIN_TLS" ;; esac
}
ca_of() {
  case $1 in egressd*) echo "$T/sandbox-ca.pem" ;; direct) echo "$W/origin-ca.crt" ;; *) echo "$T/mitm-ca.crt" ;; esac
}

# Every setup answers, with the certificate expected (verified by curl). A
# second try for haproxy, which drops the first connection for each name it
# has not generated a certificate for yet (this also warms origin.test).
wait_for squid 20 sh -c "ss -lnt | grep -q '127.0.0.1:$SQUID_BUMP '"
wait_for haproxy 10 sh -c "ss -lnt | grep -q '127.0.0.1:$HAPROXY_MITM '"
for where in direct egressd haproxy haproxy_inject squid; do
  check=(as "$where" curl -sS --fail -o /dev/null --cacert "$(ca_of "$where")" "https://origin.test:$(port_of "$where")/small.txt")
  if ! "${check[@]}" 2>"$T/curl-$where.err" && ! "${check[@]}" 2>"$T/curl-$where.err"; then
    echo "bench: the $where TLS setup does not answer: $(cat "$T/curl-$where.err")" >&2
    tail -n 20 "$W/egressd.log" "$T/haproxy.log" "$T/squid/cache.log" >&2
    exit 1
  fi
done

cpu_ticks() {  # utime+stime of a process and its children (squid's helpers)
  local total=0 p
  for p in $1 $(ps -o pid= --ppid "$1"); do
    total=$((total + $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0)))
  done
  echo "$total"
}
rss_kib() {
  local total=0 p
  for p in $1 $(ps -o pid= --ppid "$1"); do
    total=$((total + $(awk '/^VmRSS:/{print $2}' "/proc/$p/status" 2>/dev/null || echo 0)))
  done
  echo "$total"
}
proxy_pid() { case $1 in egressd*) echo "$EGRESSD_PID" ;; haproxy*) echo "$HAPROXY_MITM_PID" ;; squid) echo "$SQUID_PID" ;; esac; }

HZ=$(getconf CLK_TCK)
# runs the command, writes the % of one core the proxy used to $T/cpu-ROW-WHERE
# (a file: the callers run in command substitutions)
measure_cpu() {  # row where command...
  local row=$1 where=$2 pid t0 t1 s0 s1 counting=""; shift 2
  pid=$(proxy_pid "$where")
  [ -n "$pid" ] && t0=$(cpu_ticks "$pid")
  # BENCH_COUNT=1: the new-names row also counts the proxy's context
  # switches and system calls (perf's software counters: steadier than CPU
  # time on a noisy VM, but counting costs each system call a little, so the
  # rates of such a run are not compared with others).
  if [ "${BENCH_COUNT:-0}" = 1 ] && [ "$row" = names ] && [ -n "$pid" ] && command -v perf >/dev/null; then
    perf stat -x, -e context-switches,raw_syscalls:sys_enter -o "$T/perf-$row-$where" \
      -p "$(echo "$pid" $(ps -o pid= --ppid "$pid") | tr -s ' ' ',')" 2>/dev/null &
    counting=$!
  fi
  s0=$(date +%s.%N)
  "$@"
  s1=$(date +%s.%N)
  [ -n "$counting" ] && { kill -INT "$counting"; wait "$counting" 2>/dev/null; }
  [ -n "$pid" ] && { t1=$(cpu_ticks "$pid"); awk -v t=$((t1 - t0)) -v hz="$HZ" -v a="$s0" -v b="$s1" 'BEGIN{printf "%.0f", 100*t/hz/(b-a)}' > "$T/cpu-$row-$where"; }
  return 0
}

# wrk through one setup -> "req/s p99 transfer errors"; the full output is
# kept in $T and shown when a run had errors.
tls_wrk() {  # row where path [wrk args]
  local row=$1 where=$2 path=$3; shift 3
  local out="$T/wrk-$row-$where.out" url errors preload=()
  url="https://origin.test:$(port_of "$where")$path"
  [ "$row" = hs ] && preload=(env LD_PRELOAD="$W/noresume.so")  # full handshakes, no resumption
  measure_cpu "$row" "$where" as "$where" "${preload[@]}" wrk --latency -d"${DUR}s" "$@" "$url" > "$out" 2>&1 || true
  errors=$(awk '/Non-2xx/{e+=$NF} /Socket errors/{gsub(/,/,""); e+=$4+$6+$8+$10} END{print e+0}' "$out")
  if [ "$errors" != 0 ] || ! grep -q 'Requests/sec' "$out"; then
    echo "bench: $row via $where had errors ($url):" >&2
    cat "$out" >&2
  fi
  echo "$(awk '/Requests\/sec/{print $2}' "$out") $(awk '$1=="99%"{print $2}' "$out") $(awk '/Transfer\/sec/{print $2}' "$out") $errors"
}

with_errors() { [ "${2:-0}" = 0 ] && echo "$1" || echo "$1 ($2 errors)"; }
median() {  # [printf format of a mean of two] < values
  tr ' ' '\n' | grep . | sort -g | awk -v f="${1:-%.2f}\n" '{v[NR]=$1} END{if (NR%2) print v[(NR+1)/2]; else printf f, (v[NR/2]+v[NR/2+1])/2}'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (b+0>0) printf "%.2f", a/b; else print "-" }'; }
trow() {  # label direct egressd haproxy squid
  echo "| $1 | $2 | $3 | $4 | $5 | $(ratio "$3" "$4") | $(ratio "$3" "$5") |"
}

echo
echo "TLS interception: $(date -u +%F) $(nproc) CPUs, ${DUR}s per run; egressd intercepts (ECDSA P-256 leaves),"
echo "haproxy and squid bump with an RSA-2048 CA; every proxy verifies the origin (ECDSA P-256 leaf)"
echo
echo "| workload | direct | egressd | haproxy | squid | egressd/haproxy | egressd/squid |"
echo "|---|---|---|---|---|---|---|"

declare -A R P99 E
if has_row ka; then
for where in direct egressd haproxy squid; do
  read -r R[$where] P99[$where] _ E[$where] <<<"$(tls_wrk ka "$where" /small.txt -t2 -c50)"
done
trow "intercepted HTTPS keep-alive 100 B, 2x50 conns (req/s)" "$(with_errors "${R[direct]}" "${E[direct]}")" \
  "$(with_errors "${R[egressd]}" "${E[egressd]}")" "$(with_errors "${R[haproxy]}" "${E[haproxy]}")" "$(with_errors "${R[squid]}" "${E[squid]}")"
echo "| ... p99 latency | ${P99[direct]} | ${P99[egressd]} | ${P99[haproxy]} | ${P99[squid]} | | |"
fi

# One injected header: the same intercepted keep-alive load with and without
# it, for egressd (a handler bound to origin.test at runtime, its value from
# a secret) and haproxy (http-request set-header), measured back to back.
if has_row inject; then
ctl() { "$BUILD/tools/egressctl" --socket "$W/sock" "$@"; }
read -r R[egressd_plain] _ _ E[egressd_plain] <<<"$(tls_wrk inject-none egressd /small.txt -t2 -c50)"
ctl handler set benchtls inject --host origin.test >/dev/null
read -r R[egressd_inject] _ _ E[egressd_inject] <<<"$(tls_wrk inject egressd_inject /small.txt -t2 -c50)"
INJECTED=$(ctl stats benchtls --json | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["sandboxes"][0]["proxy"]["requests_injected"])')
ctl handler clear benchtls --host origin.test >/dev/null
read -r R[haproxy_plain] _ _ E[haproxy_plain] <<<"$(tls_wrk inject-none haproxy /small.txt -t2 -c50)"
read -r R[haproxy_inject] _ _ E[haproxy_inject] <<<"$(tls_wrk inject haproxy_inject /small.txt -t2 -c50)"
cost() { awk -v a="$1" -v b="$2" 'BEGIN{ if (a+0>0) printf "%.1f%%", 100*(a-b)/a; else print "-" }'; }
INJECT_ROW="| intercepted keep-alive + 1 injected header (req/s; egressd: $INJECTED requests injected) | $(with_errors "${R[egressd_plain]}" "${E[egressd_plain]}") | $(with_errors "${R[egressd_inject]}" "${E[egressd_inject]}") | $(cost "${R[egressd_plain]}" "${R[egressd_inject]}") | $(with_errors "${R[haproxy_plain]}" "${E[haproxy_plain]}") | $(with_errors "${R[haproxy_inject]}" "${E[haproxy_inject]}") | $(cost "${R[haproxy_plain]}" "${R[haproxy_inject]}") |"
fi

if has_row hs; then
for where in direct egressd haproxy squid; do
  read -r R[$where] _ _ E[$where] <<<"$(tls_wrk hs "$where" /small.txt -t2 -c50 -H 'Connection: close')"
done
trow "new connections, full TLS handshake + 1 GET, 2x50 (conn/s)" "$(with_errors "${R[direct]}" "${E[direct]}")" \
  "$(with_errors "${R[egressd]}" "${E[egressd]}")" "$(with_errors "${R[haproxy]}" "${E[haproxy]}")" "$(with_errors "${R[squid]}" "${E[squid]}")"
fi

if has_row names; then

declare -A NAMES_RUNS NAMES_ERRORS
NAMES_RATIOS=""  # egressd/squid of each round (the two measured back to back)
NAMES_CPU=""
NAMES_COUNTS=""
for round in $(seq "$NAMES_ROUNDS"); do
  for where in direct egressd haproxy squid; do
    # haproxy cannot do this row (see docs/benchmarks.md): one round shows it.
    [ "$where" = haproxy ] && [ "$round" -gt 1 ] && continue
    prefix=${where:0:1}$$r$round-
    [ "$where" = squid ] && prefix=sq${round}r  # the names in squid's hosts file
    out=$(measure_cpu names "$where" as "$where" "$W/new_names_bench" 127.0.0.1 "$(port_of "$where")" "$prefix" origin.test "$DUR" "$NAMES_PROCS" "$NAMES_MAX" 2>"$T/names-$where.err")
    read -r rate ok errors <<<"$out"
    echo "${ok:-0}" > "$T/ok-names-$where"
    NAMES_RUNS[$where]+=" $rate"
    NAMES_ERRORS[$where]=$((${NAMES_ERRORS[$where]:-0} + ${errors:-0}))
    [ -s "$T/names-$where.err" ] && { echo "bench: new names via $where:" >&2; cat "$T/names-$where.err" >&2; }
  done
  last() { echo "${NAMES_RUNS[$1]}" | awk '{print $NF}'; }
  NAMES_RATIOS+=" $(ratio "$(last egressd)" "$(last squid)")"
  # The proxy's CPU per connection (ms): what each new name costs it.
  cpu_ms() { awk -v c="$(cat "$T/cpu-names-$1")" -v r="$(last "$1")" 'BEGIN{ if (r+0>0) printf "%.2f", 10*c/r; else print "-" }'; }
  NAMES_CPU+=" egressd $(cpu_ms egressd) squid $(cpu_ms squid);"
  # Context switches and system calls per connection (when perf counted them).
  per_conn() {
    [ -s "$T/perf-names-$1" ] || return 0
    awk -F, -v ok="$(cat "$T/ok-names-$1")" '/context-switches/{c=$1} /sys_enter/{s=$1}
      END{ if (ok+0>0) printf " %s %.1f switches %.1f syscalls;", w, c/ok, s/ok }' w="$1" "$T/perf-names-$1"
  }
  NAMES_COUNTS+="$(per_conn egressd)$(per_conn squid)"
done
for where in direct egressd haproxy squid; do
  R[$where]=$(echo "${NAMES_RUNS[$where]}" | median %.0f)
  E[$where]=${NAMES_ERRORS[$where]}
done
# egressd/squid: the median of the rounds' ratios, each of two runs back to back.
echo "| a never-seen host name per connection, $NAMES_PROCS clients (conn/s; median of $NAMES_ROUNDS rounds) | $(with_errors "${R[direct]}" "${E[direct]}") | $(with_errors "${R[egressd]}" "${E[egressd]}") | $(with_errors "${R[haproxy]}" "${E[haproxy]}") | $(with_errors "${R[squid]}" "${E[squid]}") | $(ratio "${R[egressd]}" "${R[haproxy]}") | $(echo "$NAMES_RATIOS" | median) |"
NAMES_DETAIL="new host names, each round (conn/s): direct${NAMES_RUNS[direct]}; egressd${NAMES_RUNS[egressd]}; squid${NAMES_RUNS[squid]}; egressd/squid${NAMES_RATIOS}; proxy CPU per connection (ms):${NAMES_CPU%;}"
[ -n "$NAMES_COUNTS" ] && NAMES_DETAIL+="; per connection (perf):${NAMES_COUNTS%;}"
fi

if has_row bulk; then

# BULK_ROUNDS (default 3): like the new-names row, the setups take turns
# and the row reports each one's median and, as egressd/haproxy, the median
# of the rounds' own ratios (one connection's throughput swings most with the
# VM's speed: single runs of this row ranged 1.05-1.45x haproxy).
declare -A MB BULK_RUNS BULK_ERRORS
BULK_RATIOS=""
for round in $(seq "${BULK_ROUNDS:-3}"); do
  for where in direct egressd haproxy squid; do
    read -r _ _ tput errors <<<"$(tls_wrk bulk "$where" /large.bin -t1 -c1)"
    BULK_RUNS[$where]+=" $(mbps "$tput")"
    BULK_ERRORS[$where]=$((${BULK_ERRORS[$where]:-0} + ${errors:-0}))
  done
  lastmb() { echo "${BULK_RUNS[$1]}" | awk '{print $NF}'; }
  BULK_RATIOS+=" $(ratio "$(lastmb egressd)" "$(lastmb haproxy)")"
done
for where in direct egressd haproxy squid; do
  MB[$where]=$(echo "${BULK_RUNS[$where]}" | median %.0f)
  E[$where]=${BULK_ERRORS[$where]}
done
echo "| 10 MiB over intercepted HTTPS, 1 conn (MB/s; median of ${BULK_ROUNDS:-3} rounds) | $(with_errors "${MB[direct]}" "${E[direct]}") | $(with_errors "${MB[egressd]}" "${E[egressd]}") | $(with_errors "${MB[haproxy]}" "${E[haproxy]}") | $(with_errors "${MB[squid]}" "${E[squid]}") | $(echo "$BULK_RATIOS" | median) | $(ratio "${MB[egressd]}" "${MB[squid]}") |"
BULK_DETAIL="10 MiB, each round (MB/s): direct${BULK_RUNS[direct]}; egressd${BULK_RUNS[egressd]}; haproxy${BULK_RUNS[haproxy]}; squid${BULK_RUNS[squid]}; egressd/haproxy${BULK_RATIOS}"
fi

if has_row idle; then

# Memory: the proxy's RSS (with its helper processes) before and while 1,000
# intercepted connections are open and idle (each answered one request).
declare -A RSS
for where in egressd haproxy squid; do
  pid=$(proxy_pid "$where")
  ready="$T/ready/idle-$where"
  before=$(rss_kib "$pid")
  start=$(date +%s.%N)
  as "$where" "$PY" tools/bench/idle_tls_conns.py 127.0.0.1 "$(port_of "$where")" origin.test 1000 "$ready" 120 2>"$T/idle-$where.err" &
  client=$!
  wait_for "1000 idle connections via $where" 90 sh -c "test -s '$ready' || ! kill -0 $client" || true
  if [ -s "$ready" ]; then
    # Idle for real, as in faults.sh: every proxy gets 4 s of idleness;
    # egressd parks a connection quiet for 1 s (its buffers go back) and
    # unmaps what its workers' pools did not need for a second, so it is
    # measured once its status says both are done (within those 4 s here;
    # at most 20 s more, else a warning: then it is measured unparked).
    sleep 4
    if [ "$where" = egressd ]; then
      parked=""
      for _ in $(seq 200); do
        "$BUILD/tools/egressctl" --socket "$W/sock" status | "$PY" -c '
import json, os, sys
p = json.load(sys.stdin)["proxy"]
sys.exit(0 if p["parked_connections"] >= 1000 and p["relay_buffers"] <= 16 * os.cpu_count() else 1)' && { parked=1; break; }
        sleep 0.1
      done
      [ -n "$parked" ] || echo "bench: egressd's 1000 idle connections did not all park: measured as they are" >&2
    fi
    RSS[$where]=$(awk -v a="$(rss_kib "$pid")" -v b="$before" 'BEGIN{printf "%.1f", (a-b)/1024}')
    echo "bench: 1000 idle connections via $where opened in $(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}') s" >&2
  else
    RSS[$where]="failed: $(tail -n 1 "$T/idle-$where.err")"
  fi
  rm -f "$ready"
  wait "$client" 2>/dev/null || true
done
echo "| RSS added by 1,000 idle intercepted connections (MiB) | | ${RSS[egressd]} | ${RSS[haproxy]} | ${RSS[squid]} | $(ratio "${RSS[egressd]}" "${RSS[haproxy]}") | $(ratio "${RSS[egressd]}" "${RSS[squid]}") |"
fi

if [ -n "${NAMES_DETAIL:-}${BULK_DETAIL:-}" ]; then
  echo
  [ -n "${NAMES_DETAIL:-}" ] && echo "$NAMES_DETAIL"
  [ -n "${BULK_DETAIL:-}" ] && echo "$BULK_DETAIL"
fi

if [ -n "${INJECT_ROW:-}" ]; then
  echo
  echo "| workload | egressd, no handler | egressd, handler | cost | haproxy | haproxy, set-header | cost |"
  echo "|---|---|---|---|---|---|---|"
  echo "$INJECT_ROW"
fi

echo
echo "| proxy CPU during the run (% of one core) | egressd | haproxy | squid |"
echo "|---|---|---|---|"
for row in "ka keep-alive" "hs full handshakes" "names new host names" "bulk 10 MiB"; do
  key=${row%% *}
  has_row "$key" || continue
  echo "| ${row#* } | $(cat "$T/cpu-$key-egressd") | $(cat "$T/cpu-$key-haproxy") | $(cat "$T/cpu-$key-squid") |"
done

# BENCH_HOLD=SECONDS keeps every setup up afterwards, to profile or poke at it
# (the egressd pid, the work dir and a client command are printed).
if [ -n "${BENCH_HOLD:-}" ]; then
  echo "bench: holding ${BENCH_HOLD}s: egressd pid $EGRESSD_PID, dir $W, sandbox cgroup $CG_TLS" >&2
  sleep "$BENCH_HOLD"
fi
