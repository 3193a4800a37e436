#!/usr/bin/env bash
# The sandbox demo: howdah's whole main job (up, status, plan, down) end to
# end on this machine, twice:
#  1. the kubeconfig target, against the project's Kubernetes API fake
#     (e2e/kube-fake: a test double of the API server with a simulated
#     controller and a pachd stand-in; no real cluster is involved);
#  2. the aws target, against moto (the AWS emulator, installed into a venv
#     by e2e/aws/moto.sh on first use) behind e2e/aws-proxy (a test double
#     adding EKS's CREATING/DELETING phases and the add-on API moto lacks),
#     with the new cluster's Kubernetes side on a second kube-fake through
#     HOWDAH_KUBE_ENDPOINT.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v cargo >/dev/null || { echo "sandbox-demo: cargo is required (rustup.rs)" >&2; exit 1; }
# cargo's own progress (a bar on a terminal, a line per crate otherwise):
# a first build takes several minutes and must not look like a hang.
echo "== building howdah, the Kubernetes API fake and the AWS proxy (a first build takes several minutes)"
cargo build --bin howdah -p howdah --bin howdah-kube-fake -p howdah-kube-fake --bin howdah-aws-proxy -p howdah-aws-proxy
howdah="$PWD/target/debug/howdah"
fake="$PWD/target/debug/howdah-kube-fake"
proxy="$PWD/target/debug/howdah-aws-proxy"
HOWDAH_MOTO_SERVER="${HOWDAH_MOTO_SERVER:-$(e2e/aws/moto.sh path 2>/dev/null || e2e/aws/moto.sh install)}"
export HOWDAH_MOTO_SERVER

work=$(mktemp -d)
fake_pid=""
eks_fake_pid=""
proxy_pid=""
cleanup() {
  for pid in $fake_pid $eks_fake_pid $proxy_pid; do kill "$pid" 2>/dev/null || true; done
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
step "down -f howdah.yaml --delete-data"; "$howdah" down -f howdah.yaml --delete-data --yes --timeout 60s

# --- 2. the aws target -------------------------------------------------
wait_ready() { # file pid what
  for _ in $(seq 1 300); do
    grep -q '^READY ' "$1" 2>/dev/null && return 0
    kill -0 "$2" 2>/dev/null || { echo "sandbox-demo: $3 exited" >&2; cat "$1.err" >&2 2>/dev/null; exit 1; }
    sleep 0.1
  done
  echo "sandbox-demo: $3 did not start" >&2; exit 1
}
"$fake" --port 0 --kubeconfig "$work/eks-kubeconfig" --context eks --ready-delay-ms 300 --no-default-storage-class >"$work/eks.out" 2>"$work/eks.out.err" &
eks_fake_pid=$!
wait_ready "$work/eks.out" "$eks_fake_pid" "the fake API server for EKS"
# EKS phases scaled down from minutes to seconds (cluster 13 min -> 3 s, ...).
"$proxy" --port 0 --start-moto --cluster-create-ms 3000 --cluster-delete-ms 1500 \
  --nodegroup-create-ms 1500 --nodegroup-delete-ms 1000 --addon-create-ms 600 --addon-delete-ms 400 \
  >"$work/proxy.out" 2>"$work/proxy.out.err" &
proxy_pid=$!
wait_ready "$work/proxy.out" "$proxy_pid" "moto and the AWS proxy"
echo
echo "== AWS emulator (moto behind e2e/aws-proxy): $(sed -n 's/^READY //p' "$work/proxy.out")"
export AWS_ENDPOINT_URL="$(sed -n 's/^READY //p' "$work/proxy.out")"
export AWS_ACCESS_KEY_ID=sandbox AWS_SECRET_ACCESS_KEY=sandbox AWS_EC2_METADATA_DISABLED=true
export HOWDAH_KUBE_ENDPOINT="$(sed -n 's/^READY //p' "$work/eks.out")"
export HOWDAH_AWS_POLL_MAX_MS=250

"$howdah" init --target aws | sed -e "s|^name: .*|name: sandbox-aws|" > aws.yaml
step validate -f aws.yaml;               "$howdah" validate -f aws.yaml
step plan -f aws.yaml;                   "$howdah" plan -f aws.yaml
step up -f aws.yaml;                     "$howdah" up -f aws.yaml --timeout 120s
step "timeline -f aws.yaml --svg aws-up.svg (where the time went)"
"$howdah" timeline -f aws.yaml --svg aws-up.svg
# HOWDAH_DEMO_SVG=path keeps the chart (README's picture is made so).
[ -z "${HOWDAH_DEMO_SVG:-}" ] || cp aws-up.svg "$HOWDAH_DEMO_SVG"
step status -f aws.yaml;                 "$howdah" status -f aws.yaml
step "up -f aws.yaml (again: nothing to do)"; "$howdah" up -f aws.yaml --timeout 120s
step "kubeconfig -f aws.yaml --out eks.kubeconfig"; "$howdah" kubeconfig -f aws.yaml --out eks.kubeconfig
step "down -f aws.yaml --delete-data";   "$howdah" down -f aws.yaml --delete-data --yes --timeout 120s
echo
echo "sandbox demo: OK"
