#!/usr/bin/env bash
# Set up everything, then replay the bundled sample capture and print what it decoded.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/feedhandler replay pcaps/sample.pcap "$@"
