#!/usr/bin/env bash
# Installs everything egressd needs to build, test and benchmark, from Debian 12
# packages only. Idempotent; run as root.
set -euo pipefail

. "$(dirname "$0")/require-root.sh"

packages=(
  # build
  build-essential cmake pkg-config clang llvm clang-format
  # sanitizer and libFuzzer runtimes (only a Recommends of clang, which
  # --no-install-recommends leaves out): tools/test.sh --sanitize, tools/fuzz.sh
  libclang-rt-14-dev
  # kernel side
  libbpf-dev bpftool libelf-dev zlib1g-dev
  # userspace libraries
  liburing-dev libssl-dev libspdlog-dev libfmt-dev libcxxopts-dev
  libyaml-cpp-dev nlohmann-json3-dev node-llhttp
  libsystemd-dev       # sd_notify: READY for the systemd unit (Type=notify)
  prometheus-cpp-dev   # --metrics-listen: /metrics in Prometheus text format
  # tests and benchmarks
  libgtest-dev libgmock-dev libbenchmark-dev python3 python3-pytest python3-pytest-timeout python3-cryptography
  curl openssl iproute2 procps psmisc haproxy wrk
  prometheus  # promtool check metrics (test_metrics.py); its own service is not used
  git nodejs  # clients of test_run_ca_trust (the sandbox CA trusted with no flags)
)

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${packages[@]}"
