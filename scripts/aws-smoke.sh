#!/usr/bin/env bash
# The one check no emulator replaces: deploy and run real pipelines on a real AWS account.
#
#   scripts/aws-smoke.sh --account-id 123456789012 [--region us-east-1]   # on AWS: costs money
#   scripts/aws-smoke.sh --local [--port PORT]                            # the same, on the local cloud
#
# Two pipelines of examples/uppercase: a single_run on Fargate, and a sequence_run whose first
# step runs on Fargate Spot and second on a g4dn.xlarge with 1 GPU (EC2, scaled from zero by
# ECS). For each: setup-pipe, upload 3 files, status, wait for the 3 results and check them,
# clean-up --purge, setup-pipe again at once (names just deleted, as AWS keeps them a while),
# clean-up --purge. It prints what it runs and sees, and exits non-zero on the first failure
# (cleaning up what it made). On the local cloud the GPU step runs without a GPU unless Docker
# has the nvidia runtime (the local cloud says so in its log).
#
# On AWS it refuses to start unless --account-id names the account the credentials reach: it
# creates an Auto Scaling group of GPU instances (a few cents a minute while it runs).
# `yunpipe doctor` (where available) says what a new account lacks first.
set -euo pipefail

usage() { sed -n '2,5p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }

here="$(cd "$(dirname "$0")/.." && pwd)"
local_cloud=0 account="" region="${AWS_DEFAULT_REGION:-us-east-1}" port=4750
while [ $# -gt 0 ]; do
  case "$1" in
    --local) local_cloud=1 ;;
    --account-id) account="${2:?--account-id needs the 12-digit account id}"; shift ;;
    --region) region="${2:?--region needs a region}"; shift ;;
    --port) port="${2:?--port needs a port}"; shift ;;
    -h|--help) usage ;;
    *) echo "aws-smoke: unknown argument $1" >&2; usage ;;
  esac
  shift
done

# The project's own commands when run from a checkout with its .venv, else those on the PATH.
bin="$here/.venv/bin"
[ -x "$bin/yunpipe" ] || bin="$(dirname "$(command -v yunpipe)")"
python="$bin/python"
[ -x "$python" ] || python="$(command -v python3)"

say() { printf '\n== %s\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }

if [ "$local_cloud" = 1 ]; then
  export YUNPIPE_LOCAL=1
  where="the local cloud"
else
  [ -n "$account" ] || { echo "aws-smoke: this deploys on AWS and costs money; confirm with --account-id ACCOUNT (or use --local)" >&2; exit 2; }
  reached="$("$python" -c 'import boto3; print(boto3.client("sts").get_caller_identity()["Account"])')" \
    || { echo "aws-smoke: cannot ask AWS which account the credentials reach: nothing done" >&2; exit 2; }
  if [ "$reached" != "$account" ]; then
    echo "aws-smoke: the credentials reach account $reached, not $account: nothing done" >&2
    exit 2
  fi
  export AWS_DEFAULT_REGION="$region"
  where="AWS account $account in $region"
fi

work="$(mktemp -d)"
# Pipeline names are at most 24 characters; bucket names are global on AWS: a random suffix.
suffix="$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')"
pipelines=()
started_cloud=0

finish() {
  status=$?
  for name in "${pipelines[@]}"; do
    "$bin/clean-up" --purge "$name" >/dev/null 2>&1 || echo "aws-smoke: clean-up of $name failed: run clean-up --purge $name" >&2
  done
  if [ "$started_cloud" = 1 ]; then "$bin/yunpipe" local down >/dev/null 2>&1 || true; fi
  rm -rf "$work"
  if [ "$status" = 0 ]; then say "smoke test passed on $where"; else say "smoke test FAILED on $where (status $status)"; fi
  exit "$status"
}
trap finish EXIT

if [ "$local_cloud" = 1 ] && ! "$bin/yunpipe" local status >/dev/null 2>&1; then
  say "starting the local cloud"
  run "$bin/yunpipe" local up --detach --port "$port"
  started_cloud=1
fi

say "wrapping examples/uppercase"
echo "$ docker build -t yunpipe-examples/uppercase:latest examples/uppercase"
built="$(docker build -q -t yunpipe-examples/uppercase:latest "$here/examples/uppercase" 2>&1)" || { echo "$built" >&2; exit 1; }
if [ "$local_cloud" = 1 ]; then
  run "$bin/wrap" --local -y -f "$here/examples/uppercase/uppercase.json"
else
  run "$bin/wrap" -y -r ecr -f "$here/examples/uppercase/uppercase.json"
fi

# workflow NAME TYPE STEP...: a workflow file of examples/uppercase steps (each a JSON object).
workflow() {
  local name="$1" kind="$2" steps
  shift 2
  steps="$(IFS=,; echo "$*")"
  cat > "$work/$name.json" <<EOF
{"name": "$name", "region": "$region", "idle_seconds": 10,
 "input_s3_name": "yunpipe-$name-in", "output_s3_name": "yunpipe-$name-out",
 "process": {"type": "$kind", "algorithms": [$steps]}}
EOF
  echo "$work/$name.json"
}
single="smoke-fargate-$suffix"
compute="smoke-gpu-$suffix"
workflow "$single" single_run '{"name": "uppercase"}' >/dev/null
workflow "$compute" sequence_run '{"name": "uppercase", "capacity": "FARGATE_SPOT"}' \
  '{"name": "uppercase", "instance_type": "g4dn.xlarge", "gpu": 1}' >/dev/null

mkdir -p "$work/in"
for n in 1 2 3; do echo "smoke file $n from $(hostname)" > "$work/in/file-$n.txt"; done

# results NAME: waits until the pipeline's 3 results are there and upper-cased.
results() {
  local name="$1" out="$work/out-$1" deadline
  # On the local cloud a loaded 2-core machine (CI, other suites) took over 2 minutes once.
  deadline=$(( $(date +%s) + $([ "$local_cloud" = 1 ] && echo 300 || echo 1500) ))
  while :; do
    rm -rf "$out"
    "$bin/yunpipe" results "$name" --download "$out" >/dev/null 2>&1 || true
    found="$(find "$out" -type f 2>/dev/null | wc -l)"
    if [ "$found" -ge 3 ]; then break; fi
    if [ "$(date +%s)" -ge "$deadline" ]; then
      echo "aws-smoke: $name has $found of 3 results after waiting; its status:" >&2
      "$bin/yunpipe" status "$name" >&2 || true
      return 1
    fi
    sleep 3
  done
  for n in 1 2 3; do
    expected="$(tr '[:lower:]' '[:upper:]' < "$work/in/file-$n.txt")"
    grep -rqxF "$expected" "$out" || { echo "aws-smoke: no result of $name reads '$expected'" >&2; return 1; }
  done
  echo "$name: 3 results, each the upper-cased input:"
  find "$out" -type f | sort | sed "s|^$out/|  |"
}

for round in 1 2; do
  say "round $round: setting up both pipelines"
  for name in "$single" "$compute"; do
    pipelines+=("$name")
    run "$bin/setup-pipe" -f "$work/$name.json"
  done
  if [ "$round" = 2 ]; then break; fi
  say "uploading 3 files to each"
  for name in "$single" "$compute"; do run "$bin/yunpipe" upload "$name" "$work/in"; done
  for name in "$single" "$compute"; do run "$bin/yunpipe" status "$name"; done
  say "waiting for the results"
  for name in "$single" "$compute"; do results "$name"; done
  say "cleaning up (then setting up again at once)"
  for name in "$single" "$compute"; do run "$bin/clean-up" --purge "$name"; done
  pipelines=()
done
say "cleaning up"
for name in "$single" "$compute"; do run "$bin/clean-up" --purge "$name"; done
pipelines=()
