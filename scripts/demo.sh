#!/usr/bin/env bash
# Set up everything, then replay the bundled sample capture and print what it decoded.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# The sample sends one heartbeat per idle minute (to stay small): a silence timeout
# above that keeps its quiet minutes from being reported as line outages.
exec .venv/bin/feedhandler replay pcaps/sample.pcap --silence-ms 120000 "$@"
