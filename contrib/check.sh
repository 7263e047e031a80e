#!/usr/bin/env bash
# Checks the alert rules and the dashboard's queries with promtool: the rules load, their unit
# tests pass (contrib/alerts_test.yml), and every dashboard query parses as PromQL. That every
# metric they name is exposed by a running usher is `cargo test --test contrib`.
# Needs promtool (Debian: prometheus) and jq.
set -euo pipefail
cd "$(dirname "$0")"
promtool check rules alerts.yml
promtool test rules alerts_test.yml
rules=$(mktemp --suffix=.yml)
trap 'rm -f "$rules"' EXIT
{
  printf 'groups:\n  - name: dashboard\n    rules:\n'
  # Grafana's variables replaced by what Prometheus accepts; each query becomes a recording rule.
  jq -r '[.panels[] | .targets[]?.expr] | to_entries[]
    | "      - record: usher_dashboard:query_\(.key)\n        expr: \(.value
        | gsub("\\$__rate_interval"; "5m") | gsub("\\$instance"; ".*") | tojson)"' grafana/usher.json
} > "$rules"
echo "dashboard queries:"
promtool check rules "$rules"
