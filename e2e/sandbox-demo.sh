#!/usr/bin/env bash
# The sandbox demo: howdah's whole main job (up, status, plan, down) end to
# end on this machine, against the project's Kubernetes API fake
# (e2e/kube-fake: a test double of the API server with a simulated
# controller and a pachd stand-in; no real cluster is involved).
set -euo pipefail
cd "$(dirname "$0")/.."

command -v cargo >/dev/null || { echo "sandbox-demo: cargo is required (rustup.rs)" >&2; exit 1; }
cargo build --quiet --bin howdah -p howdah --bin howdah-kube-fake -p howdah-kube-fake
howdah="$PWD/target/debug/howdah"
fake="$PWD/target/debug/howdah-kube-fake"

work=$(mktemp -d)
fake_pid=""
cleanup() {
  [ -n "$fake_pid" ] && kill "$fake_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# Start the fake API server on a free port; it writes a kubeconfig for itself.
"$fake" --port 0 --kubeconfig "$work/kubeconfig" --context sandbox --ready-delay-ms 300 >"$work/fake.out" 2>"$work/fake.err" &
fake_pid=$!
for _ in $(seq 1 100); do
  grep -q '^READY ' "$work/fake.out" 2>/dev/null && break
  kill -0 "$fake_pid" 2>/dev/null || { cat "$work/fake.err" >&2; exit 1; }
  sleep 0.1
done
grep -q '^READY ' "$work/fake.out" || { echo "sandbox-demo: the fake API server did not start" >&2; exit 1; }
echo "== fake Kubernetes API: $(sed -n 's/^READY //p' "$work/fake.out")"

cd "$work"
"$howdah" init --target kubeconfig \
  | sed -e "s|^name: .*|name: sandbox|" \
        -e "s|^    # context: .*|    context: sandbox|" \
        -e "s|^    # path: .*|    path: $work/kubeconfig|" > howdah.yaml

step() { echo; echo "== howdah $*"; }
step validate -f howdah.yaml;            "$howdah" validate -f howdah.yaml
step plan -f howdah.yaml;                "$howdah" plan -f howdah.yaml
step up -f howdah.yaml;                  "$howdah" up -f howdah.yaml --timeout 60s
step status -f howdah.yaml;              "$howdah" status -f howdah.yaml
step "up -f howdah.yaml (again: nothing to do)"; "$howdah" up -f howdah.yaml --timeout 60s
step down -f howdah.yaml;                "$howdah" down -f howdah.yaml --timeout 60s
step "down -f howdah.yaml --delete-data"; "$howdah" down -f howdah.yaml --delete-data --timeout 60s
echo
echo "sandbox demo: OK"
