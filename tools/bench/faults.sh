#!/usr/bin/env bash
# egressd under load and faults, at full size (issue 13 §2; the CI-sized
# versions are tests/e2e/test_load_and_faults.py). Loopback only. Prints
# markdown tables; record them in docs/benchmarks.md.
#
#   tools/bench/faults.sh [KEEPALIVE_CONNS=2000] [SLOWLORIS_CONNS=500]   (as root)
#
# 1. KEEPALIVE_CONNS idle keep-alive connections (one 100 B request each)
#    held through egressd (from a sandbox) and through haproxy 2.6 (HTTP
#    mode, 2 threads), in the same run: RSS added per 1,000 connections;
#    meanwhile another sandbox runs wrk through egressd; then a second
#    request on every held connection.
# 2. Slowloris: SLOWLORIS_CONNS connections sending a byte every 2 s, against
#    egressd (--header-timeout 5) and haproxy (timeout http-request 5s);
#    another sandbox runs wrk through egressd meanwhile; egressd's
#    descriptor count before and after.
# 3. Bad upstreams, 200 concurrent requests each: a closed port (502), an
#    origin that never answers (504 at --response-timeout 5), one that closes
#    mid-response; egressd's descriptor count before and after each.
# 4. 50 endless responses read slowly or fast for 10 s: egressd's RSS.
# 5. `policy reload` and SIGHUP every 0.25 s during 2x100 keep-alive load:
#    errors, req/s and p99 against the same load with no change.
# 6. kill -9 during load, restart 2 s later: requests answered while down
#    (none), restart to ready, ready to the first 200, sandboxes kept.
#
# Needs: a built tree (tools/build.sh), tools/install-deps.sh (wrk, haproxy);
# installs nginx-light if missing.
set -euo pipefail
. "$(dirname "$0")/../require-root.sh"
cd "$(dirname "$0")/../.."
ROOT=$PWD
KA=${1:-2000}
SLOW=${2:-500}
BUILD=$ROOT/build
PY=/usr/bin/python3
W=$(mktemp -d /tmp/egressd-faults.XXXXXX)
CG2=$(awk '$3=="cgroup2"{print $2; exit}' /proc/self/mounts)
CG_A=$CG2/egressd-bench-faults-a-$$ CG_B=$CG2/egressd-bench-faults-b-$$
ORIGIN_HTTP=18080 HAPROXY_HTTP=18081 PROXY_PORT=18001 BAD_PORT=18090
pids=()
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"  # the clients hold thousands of sockets

cleanup() {
  set +e
  for g in "$CG_A" "$CG_B"; do
    [ -d "$g" ] && { echo 1 > "$g/cgroup.kill"; sleep 0.3; "$BUILD/tools/egressctl" --socket "$W/sock" detach "$g" >/dev/null 2>&1; rmdir "$g"; }
  done
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  [ -f "$W/nginx.pid" ] && kill "$(cat "$W/nginx.pid")" 2>/dev/null
  wait 2>/dev/null
  rm -rf "/sys/fs/bpf/egressd-bench-$$" "$W"
}
trap cleanup EXIT

command -v nginx >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light >/dev/null
chmod 755 "$W"
mkdir -p "$W/www"
head -c 100 /dev/zero | tr '\0' 'a' > "$W/www/small.txt"
chmod 644 "$W/www/small.txt"
cat > "$W/nginx.conf" <<NGINX
worker_processes 1;
worker_rlimit_nofile 65536;
pid $W/nginx.pid;
error_log $W/nginx.err warn;
events { worker_connections 16384; }
http {
  access_log off;
  keepalive_requests 10000000; keepalive_timeout 300s;
  server { listen 127.0.0.1:$ORIGIN_HTTP backlog=4096; root $W/www; }
}
NGINX
nginx -c "$W/nginx.conf"

cat > "$W/haproxy.cfg" <<HAP
global
  nbthread 2
  maxconn 8000
defaults
  mode http
  option http-keep-alive
  timeout connect 5s
  timeout client 300s
  timeout server 300s
  timeout http-keep-alive 300s
  timeout http-request 5s
frontend http_in
  bind 127.0.0.1:$HAPROXY_HTTP
  default_backend http_origin
backend http_origin
  http-reuse safe
  server o 127.0.0.1:$ORIGIN_HTTP
HAP
haproxy -f "$W/haproxy.cfg" >"$W/haproxy.log" 2>&1 &
HAPROXY_PID=$!
pids+=($!)

mkdir -p "$W/policies"
mkdir -m 0700 "$W/secrets"
printf 'name: bench\ndeny_cidrs: ["127.0.0.99/32"]\n' > "$W/policies/bench.yaml"
start_egressd() {
  "$BUILD/userspace/egressd" --socket "$W/sock" --state-dir "$W/state" --bpffs "/sys/fs/bpf/egressd-bench-$$" \
    --policy-dir "$W/policies" --proxy-port $PROXY_PORT --dns-upstream 127.0.0.1:18053 --secrets-dir "$W/secrets" \
    --header-timeout 5 --response-timeout 5 --log-level warn 2>>"$W/egressd.log" &
  EGRESSD_PID=$!
  pids+=($!)
  for _ in $(seq 200); do "$BUILD/tools/egressctl" --socket "$W/sock" status >/dev/null 2>&1 && break; sleep 0.05; done
}
start_egressd
mkdir "$CG_A" "$CG_B"
"$BUILD/tools/egressctl" --socket "$W/sock" attach "$CG_A" --policy bench --instance faults-a >/dev/null
"$BUILD/tools/egressctl" --socket "$W/sock" attach "$CG_B" --policy bench --instance faults-b >/dev/null

in_cg() { local cg=$1; shift; sh -c 'echo $$ > "$0/cgroup.procs" && exec "$@"' "$cg" "$@"; }
rss_kib() { awk '/^VmRSS:/{print $2}' "/proc/$1/status"; }
fds() { ls "/proc/$1/fd" | wc -l; }
mib_per_1000() { awk -v a="$1" -v b="$2" -v n="$3" 'BEGIN{printf "%.1f", (a-b)/1024*1000/n}'; }
wait_file() {  # file seconds client-pid
  for _ in $(seq $(($2 * 10))); do [ -s "$1" ] && return 0; kill -0 "$3" 2>/dev/null || return 1; sleep 0.1; done
  return 1
}
# wrk from sandbox B through egressd while something else happens: "req/s p99 errors"
wrk_b() {
  local out
  out=$(in_cg "$CG_B" wrk --latency -t1 -c10 -d"$1s" "http://127.0.0.1:$ORIGIN_HTTP/small.txt")
  echo "$(awk '/Requests\/sec/{print $2}' <<<"$out") $(awk '$1=="99%"{print $2}' <<<"$out") $(grep -c 'Non-2xx\|Socket errors' <<<"$out")"
}
# another sandbox's baseline, nothing else going on
read -r base_rps base_p99 _ <<<"$(wrk_b 5)"

echo "egressd load and faults: $(date -u +%F) $(nproc) CPUs"
echo
echo "| $KA idle keep-alive connections | egressd | haproxy | egressd/haproxy |"
echo "|---|---|---|---|"
declare -A RSS OPEN AGAIN
for where in egressd haproxy; do
  ready=$W/ka-$where
  if [ $where = egressd ]; then pid=$EGRESSD_PID; else pid=$HAPROXY_PID; fi
  before=$(rss_kib "$pid")
  if [ $where = egressd ]; then
    in_cg "$CG_A" "$PY" tools/bench/idle_http_conns.py 127.0.0.1 $ORIGIN_HTTP 127.0.0.1 "$KA" "$ready" 300 >"$W/ka-$where.out" 2>&1 &
  else
    "$PY" tools/bench/idle_http_conns.py 127.0.0.1 $HAPROXY_HTTP 127.0.0.1 "$KA" "$ready" 300 >"$W/ka-$where.out" 2>&1 &
  fi
  client=$!
  if wait_file "$ready" 120 "$client"; then
    # Idle for real: egressd parks a connection quiet for 1 s (its buffers go
    # back to the worker's pool) and unmaps what the pool did not need for a
    # second, checked every second: measured once its status says both are
    # done (at most 20 s); haproxy is given the same 4 s of idleness.
    sleep 4
    if [ $where = egressd ]; then
      for _ in $(seq 200); do
        "$BUILD/tools/egressctl" --socket "$W/sock" status | "$PY" -c '
import json, os, sys
p = json.load(sys.stdin)["proxy"]
sys.exit(0 if p["parked_connections"] >= int(sys.argv[1]) and p["relay_buffers"] <= 16 * os.cpu_count() else 1)' "$KA" && break
        sleep 0.1
      done
    fi
    RSS[$where]=$(mib_per_1000 "$(rss_kib "$pid")" "$before" "$KA")
    OPEN[$where]=$(awk '{print $3}' "$ready")
    if [ $where = egressd ]; then read -r during_rps during_p99 during_err <<<"$(wrk_b 5)"; fi
    rm -f "$ready"
    wait "$client" || true
    AGAIN[$where]=$(awk '/^again/{print $2}' "$W/ka-$where.out")
  else
    RSS[$where]="failed: $(tail -n 1 "$W/ka-$where.out")"
    kill "$client" 2>/dev/null || true
  fi
done
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (b+0>0) printf "%.2f", a/b; else print "-" }'; }
echo "| RSS added per 1,000 idle connections (MiB) | ${RSS[egressd]} | ${RSS[haproxy]} | $(ratio "${RSS[egressd]}" "${RSS[haproxy]}") |"
echo "| seconds to open them, one request each | ${OPEN[egressd]} | ${OPEN[haproxy]} | |"
echo "| second request on each after the hold: 200s | ${AGAIN[egressd]:-} | ${AGAIN[haproxy]:-} | |"
echo
echo "| another sandbox through egressd, wrk 1x10 conns 5 s | req/s | p99 | errors |"
echo "|---|---|---|---|"
echo "| alone | $base_rps | $base_p99 | |"
echo "| while $KA connections are held | ${during_rps:-} | ${during_p99:-} | ${during_err:-} |"

# --- slowloris ---
fd0=$(fds "$EGRESSD_PID")
in_cg "$CG_A" "$PY" tools/bench/slowloris.py 127.0.0.1 $ORIGIN_HTTP "$SLOW" 2 20 >"$W/slow-egressd.out" 2>&1 &
slow_client=$!
read -r slow_rps slow_p99 slow_err <<<"$(wrk_b 5)"
wait "$slow_client" || true
"$PY" tools/bench/slowloris.py 127.0.0.1 $HAPROXY_HTTP "$SLOW" 2 20 >"$W/slow-haproxy.out" 2>&1 || true
sleep 1
fd1=$(fds "$EGRESSD_PID")
echo "| while $SLOW slowloris connections (a byte / 2 s) | $slow_rps | $slow_p99 | $slow_err |"
echo
echo "| $SLOW slowloris connections, header timeout 5 s | closed | first close (s) | last close (s) | answered |"
echo "|---|---|---|---|---|"
for where in egressd haproxy; do
  read -r n first last answer <<<"$(cat "$W/slow-$where.out")"
  echo "| $where | $n | $first | $last | $answer |"
done
echo "| egressd descriptors before / after | $fd0 / $fd1 | | | |"

# --- bad upstreams ---
cat > "$W/bad_origin.py" <<'PYEOF'
import socket, sys, threading, time
mode, port = sys.argv[1], int(sys.argv[2])
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", port)); s.listen(4096)
def serve(c):
    c.settimeout(30)
    try:
        buf = b""
        while b"\r\n\r\n" not in buf:
            d = c.recv(4096)
            if not d: return
            buf += d
        if mode == "silent":
            c.recv(1)  # until the proxy gives up
        elif mode == "cut":
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + b"y" * 1000)
        elif mode == "endless":
            c.sendall(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n")
            chunk = b"z" * 262144
            while True:  # until the proxy closes: its client went away
                c.sendall(chunk)
    except OSError:
        pass
    finally:
        c.close()
print("ready", flush=True)
while True:
    c, _ = s.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
PYEOF
cat > "$W/bad_client.py" <<'PYEOF'
import collections, socket, sys, threading, time
port, n = int(sys.argv[1]), int(sys.argv[2])
out = collections.Counter()
lock = threading.Lock()
worst = [0.0]
def one():
    t0 = time.monotonic()
    try:
        c = socket.create_connection(("127.0.0.1", port), timeout=30)
        c.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        got = b""
        while True:
            d = c.recv(65536)
            if not d: break
            got += d
        what = got.split(b"\r\n")[0].decode("latin-1") or "closed, nothing"
        if what.startswith("HTTP/1.1 200") : what += " then closed"
    except socket.timeout:
        what = "hung (30 s)"
    except OSError as e:
        what = type(e).__name__
    with lock:
        out[what] += 1
        worst[0] = max(worst[0], time.monotonic() - t0)
ts = [threading.Thread(target=one) for _ in range(n)]
for t in ts: t.start()
for t in ts: t.join()
print("; ".join(f"{k}: {v}" for k, v in sorted(out.items())) + f" | {worst[0]:.1f}")
PYEOF
echo
echo "| 200 concurrent requests to a bad upstream | answers | slowest (s) | egressd descriptors before / after |"
echo "|---|---|---|---|"
for mode in refused silent cut; do
  if [ $mode != refused ]; then
    "$PY" "$W/bad_origin.py" $mode $BAD_PORT > "$W/bad-$mode.out" 2>&1 &
    bad_pid=$!
    for _ in $(seq 50); do grep -q ready "$W/bad-$mode.out" && break; sleep 0.1; done
  fi
  before=$(fds "$EGRESSD_PID")
  IFS='|' read -r answers slowest <<<"$(in_cg "$CG_A" "$PY" "$W/bad_client.py" $BAD_PORT 200)"
  [ $mode != refused ] && { kill "$bad_pid"; wait "$bad_pid" 2>/dev/null || true; }
  sleep 1  # closes are processed asynchronously
  echo "| $mode | $answers | $slowest | $before / $(fds "$EGRESSD_PID") |"
done
# Endless bodies: ENDLESS responses that never end, read by clients in a
# sandbox, half slowly (16 KiB every 20 ms), half as fast as they can, for
# 10 s; egressd's RSS sampled every 100 ms.
ENDLESS=50
cat > "$W/endless_client.py" <<'PYEOF'
import socket, sys, threading, time
port, n, seconds = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
got = [0] * n
def one(i):
    c = socket.create_connection(("127.0.0.1", port), timeout=30)
    c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    c.sendall(b"GET /endless HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        d = c.recv(16384 if i % 2 else 1 << 20)
        if not d:
            break
        got[i] += len(d)
        if i % 2:
            time.sleep(0.02)
    c.close()
ts = [threading.Thread(target=one, args=(i,)) for i in range(n)]
for t in ts: t.start()
for t in ts: t.join()
slow = sum(got[1::2]) / (n // 2) / seconds / 1e6
fast = sum(got[0::2]) / ((n + 1) // 2) / seconds / 1e6
print(f"{slow:.2f} {fast:.1f}")
PYEOF
"$PY" "$W/bad_origin.py" endless $BAD_PORT > "$W/bad-endless.out" 2>&1 &
bad_pid=$!
for _ in $(seq 50); do grep -q ready "$W/bad-endless.out" && break; sleep 0.1; done
fd_before=$(fds "$EGRESSD_PID")
rss_before=$(rss_kib "$EGRESSD_PID")
in_cg "$CG_A" "$PY" "$W/endless_client.py" $BAD_PORT $ENDLESS 10 > "$W/endless.out" 2>&1 &
client=$!
rss_max=$rss_before
while kill -0 "$client" 2>/dev/null; do
  r=$(rss_kib "$EGRESSD_PID"); [ "$r" -gt "$rss_max" ] && rss_max=$r
  sleep 0.1
done
wait "$client" || true
kill "$bad_pid"; wait "$bad_pid" 2>/dev/null || true
sleep 1
read -r slow_mbs fast_mbs <<<"$(cat "$W/endless.out")"
echo
echo "| $ENDLESS endless responses, 10 s (half read slowly, half fast) | egressd |"
echo "|---|---|"
echo "| MB/s per slow reader / per fast reader | $slow_mbs / $fast_mbs |"
echo "| RSS before / at most during (MiB) | $(awk -v a="$rss_before" -v b="$rss_max" 'BEGIN{printf "%.1f / %.1f", a/1024, b/1024}') |"
echo "| descriptors before / after | $fd_before / $(fds "$EGRESSD_PID") |"

# --- 5. policy reload and SIGHUP during keep-alive load ---
# wrk from sandbox A (2 threads, 100 keep-alive connections, 10 s) while the
# policy file alternates between two versions that both allow the origin and
# egressd re-reads it every 0.25 s (egressctl policy reload and SIGHUP in
# turn). Any non-2xx answer or socket error would be a request the switch broke.
wrk_a() {
  local out
  out=$(in_cg "$CG_A" wrk --latency -t2 -c100 -d"$1s" "http://127.0.0.1:$ORIGIN_HTTP/small.txt")
  echo "$(awk '/Requests\/sec/{print $2}' <<<"$out") $(awk '$1=="99%"{print $2}' <<<"$out") $(awk '/Non-2xx/{n+=$NF} /Socket errors/{n+=1} END{print n+0}' <<<"$out")"
}
read -r calm_rps calm_p99 calm_err <<<"$(wrk_a 10)"
(
  i=0
  end=$((SECONDS + 10))
  while [ $SECONDS -lt $end ]; do
    printf 'name: bench\ndeny_cidrs: ["127.0.0.%d/32"]\n' $((98 + i % 2)) > "$W/policies/bench.yaml"
    if [ $((i % 2)) = 0 ]; then
      "$BUILD/tools/egressctl" --socket "$W/sock" policy reload >/dev/null
    else
      kill -HUP "$EGRESSD_PID"
    fi
    i=$((i + 1))
    sleep 0.25
  done
  echo "$i" > "$W/reloads"
) &
reloader=$!
read -r reload_rps reload_p99 reload_err <<<"$(wrk_a 10)"
wait "$reloader" || true
echo
echo "| wrk 2x100 keep-alive through egressd, 10 s | req/s | p99 | non-2xx + socket errors |"
echo "|---|---|---|---|"
echo "| no policy change | $calm_rps | $calm_p99 | $calm_err |"
echo "| $(cat "$W/reloads") re-reads (policy reload and SIGHUP in turn, every 0.25 s) | $reload_rps | $reload_p99 | $reload_err |"

# --- 6. kill -9 during load, then a restart ---
# A prober in sandbox A makes one request per connection, back to back, for
# 6 s, while sandbox B runs wrk; egressd is killed (SIGKILL) after 1.5 s and
# started again 2 s later with the same state dir. Nothing may be answered
# while it is down (the kernel programs stay: connections fail), and the same
# sandboxes are served again right after it is ready.
cat > "$W/prober.py" <<'PYEOF'
import socket, sys, time
port, out, seconds = int(sys.argv[1]), sys.argv[2], float(sys.argv[3])
with open(out, "w", buffering=1) as f:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        t = time.time()
        try:
            c = socket.create_connection(("127.0.0.1", port), timeout=1)
            c.settimeout(1)
            c.sendall(b"GET /small.txt HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            ok = c.recv(100).startswith(b"HTTP/1.1 200")
            c.close()
        except OSError:
            ok = False
        f.write(f"{t:.3f} {int(ok)}\n")
        if not ok:
            time.sleep(0.01)
PYEOF
in_cg "$CG_A" "$PY" "$W/prober.py" $ORIGIN_HTTP "$W/probes" 6 &
prober=$!
wrk_b 6 > "$W/wrk-kill9" &
wrk_kill=$!
sleep 1.5
kill -9 "$EGRESSD_PID"
wait "$EGRESSD_PID" 2>/dev/null || true
killed_at=$(date +%s.%N)  # gone (reaped): a probe from here on finds no egressd
sleep 2
started_at=$(date +%s.%N)
start_egressd
ready_at=$(date +%s.%N)
wait "$prober" || true
wait "$wrk_kill" || true
sandboxes=$("$BUILD/tools/egressctl" --socket "$W/sock" list --json | "$PY" -c 'import json,sys; print(len(json.load(sys.stdin)["sandboxes"]))')
read -r down_ok down_all first_ok <<<"$(awk -v k="$killed_at" -v s="$started_at" -v r="$ready_at" '
  $1 >= k && $1 < s { all++; ok += $2 }
  $1 >= r && $2 == 1 && first == "" { first = $1 - r }
  END { printf "%d %d %s", ok, all, (first == "" ? "never" : sprintf("%.3f", first)) }' "$W/probes")"
echo
echo "| kill -9 during load, restart 2 s later | |"
echo "|---|---|"
echo "| requests answered while egressd was down | $down_ok of $down_all attempts |"
echo "| restart to ready (control socket answers), s | $(awk -v a="$started_at" -v b="$ready_at" 'BEGIN{printf "%.2f", b-a}') |"
echo "| ready to the first 200 in the same sandbox, s | $first_ok |"
echo "| sandboxes attached after the restart (no re-attach) | $sandboxes |"

if [ -s "$W/egressd.log" ]; then echo; echo "egressd log (warn and above):"; tail -n 20 "$W/egressd.log"; fi
