#!/usr/bin/env bash
# GPU readiness check (issue 13), for a machine with an NVIDIA GPU:
#
#   bench/gpu_check.sh [--gpu N] [--peers] [--python PY] [--workdir DIR] [-- run.py flags…]
#
# 1. the driver: nvidia-smi lists GPU N (fails at once when nvidia-smi is missing);
# 2. a Python whose TensorFlow has the CUDA libraries: by default $CACHE/gpu-venv, the project's
#    lock plus tensorflow[and-cuda] at the locked version (the project's .venv has no CUDA);
# 3. placement: the MLP loaded by the server's own runtime (runtime/savedmodel.py, after
#    runtime/devices.py) runs its ops on the GPU;
# 4. memory: modelship-server with --per_process_gpu_memory_fraction=0.25 takes about a quarter
#    of the GPU, with --gpu_memory_growth much less (the GPU's used memory, before and after);
# 5. throughput: bench/server_throughput/run.py on that one GPU (CUDA_VISIBLE_DEVICES=N), the
#    MLP and half_plus_two, modelship-server with one process per GPU (--workers=auto) and with
#    several processes sharing the GPU, batching with the server's GPU defaults; --peers adds
#    KServe and MLServer (their venvs get tensorflow[and-cuda] too). It prints run.py's table.
#
# TF Serving's half_plus_two (../shared/testdata) pins its ops to /device:CPU:0, so it runs on
# the CPU even here: its rows measure the server around the model, the MLP's the GPU.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cache=${MODELSHIP_CACHE:-$HOME/.cache/modelship}
gpu=0
peers=0
python=
work=
while [[ $# -gt 0 ]]; do
  case $1 in
    --gpu) gpu=$2; shift 2 ;;
    --gpu=*) gpu=${1#*=}; shift ;;
    --peers) peers=1; shift ;;
    --python) python=$2; shift 2 ;;
    --python=*) python=${1#*=}; shift ;;
    --workdir) work=$2; shift 2 ;;
    --workdir=*) work=${1#*=}; shift ;;
    --) shift; break ;;
    -h|--help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "gpu_check: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done

fail() { echo "gpu_check: FAILED: $*" >&2; exit 1; }
step() { echo "gpu_check: $*" >&2; }

# -- 1. the driver ------------------------------------------------------------------------------
command -v nvidia-smi >/dev/null \
  || fail "nvidia-smi not found: no NVIDIA driver here, so no GPU to check (run this on a GPU machine)"
listing=$(nvidia-smi -L 2>&1) || fail "nvidia-smi -L failed: $listing"
grep -q "^GPU $gpu:" <<<"$listing" || fail "no GPU $gpu in nvidia-smi -L:
$listing"
step "$(grep "^GPU $gpu:" <<<"$listing")"
# CUDA numbers GPUs fastest first unless told otherwise; nvidia-smi by PCI bus. Make them agree.
export CUDA_DEVICE_ORDER=PCI_BUS_ID
export CUDA_VISIBLE_DEVICES=$gpu
unset TF_FORCE_GPU_ALLOW_GROWTH  # it would override the server's memory flags
memory() {  # used and total MiB of the GPU
  nvidia-smi --query-gpu=memory.used,memory.total --format=csv,noheader,nounits -i "$gpu" | tr -d ' '
}

# -- 2. TensorFlow with CUDA ----------------------------------------------------------------------
if [[ -z $python ]]; then
  uv=$cache/uv-venv/bin/uv
  [[ -x $uv ]] || fail "uv not found at $uv: run make setup (hack/bootstrap.sh) first"
  tf_version=$(sed -n 's/^ *"tensorflow==\([^"]*\)".*/\1/p' "$root/pyproject.toml" | head -1)
  [[ -n $tf_version ]] || fail "no tensorflow==VERSION in pyproject.toml"
  venv=$cache/gpu-venv
  step "preparing $venv (the lock, plus tensorflow[and-cuda]==$tf_version)"
  (cd "$root" && UV_PROJECT_ENVIRONMENT=$venv "$uv" sync --locked --all-groups --inexact --quiet)
  "$uv" pip install --quiet --python "$venv/bin/python" "tensorflow[and-cuda]==$tf_version"
  python=$venv/bin/python
fi
[[ -x $python ]] || fail "no Python at $python"
work=${work:-$(mktemp -d -t ms-gpu-check-XXXXXX)}
mkdir -p "$work"
step "work files in $work"

# -- 3. placement ---------------------------------------------------------------------------------
step "TensorFlow and the server's runtime on the GPU"
TF_CPP_MIN_LOG_LEVEL=2 "$python" - "$root" "$work" <<'EOF' || fail "the MLP did not run on the GPU (see above)"
import sys
from pathlib import Path

root, work = Path(sys.argv[1]), Path(sys.argv[2])
import tensorflow as tf
from modelship_server.runtime import devices, savedmodel

gpus = tf.config.list_physical_devices("GPU")
print("TensorFlow", tf.__version__, "built with CUDA:", tf.test.is_built_with_cuda(), "GPUs:", gpus)
if not gpus:
    sys.exit("TensorFlow sees no GPU: are the CUDA libraries (tensorflow[and-cuda]) installed?")
# As modelship-server does, before any model loads.
devices.configure(devices.GpuMemory(growth=True))
sys.path.insert(0, str(root / "bench" / "server_throughput"))
import run  # bench/server_throughput/run.py: builds the MLP as the benchmark serves it

mlp = run.build_models(work)["mlp"]
held = tf.config.experimental.get_memory_info("GPU:0")["current"]
servable = savedmodel.load(str(mlp / "1"))
sig = servable._defs["serving_default"]
feed = {sig.inputs[k].name: [run.row("mlp")] * 8 for k in sig.inputs}
fetch = [sig.outputs[k].name for k in sig.outputs]
options = tf.compat.v1.RunOptions(trace_level=tf.compat.v1.RunOptions.SOFTWARE_TRACE)
metadata = tf.compat.v1.RunMetadata()
servable._session.run(fetch, feed, options=options, run_metadata=metadata)
ran = {d.device: [n.node_name for n in d.node_stats] for d in metadata.step_stats.dev_stats}
for device, nodes in ran.items():
    print(f"  {device}: {len(nodes)} nodes, e.g. {', '.join(sorted(nodes)[:4])}")
# The model's own ops run inside the signature's function: StatefulPartitionedCall/….
model = "StatefulPartitionedCall/"
on_gpu = sorted(n for d, nodes in ran.items() if "GPU" in d.upper() for n in nodes if n.startswith(model))
# The MLP's weights are 7.4 MB of float32: on the GPU, the allocator holds that much more.
loaded = tf.config.experimental.get_memory_info("GPU:0")["current"] - held
print(f"model ops traced on the GPU: {len(on_gpu)}; GPU:0 memory for the model: {loaded:,} bytes")
if not on_gpu and loaded < 7_000_000:
    sys.exit("the MLP ran on the CPU: none of its ops on a GPU, and the GPU holds less than its weights")
servable.close()
EOF

# -- 4. memory ------------------------------------------------------------------------------------
server_bin=$(dirname "$python")/modelship-server
[[ -x $server_bin ]] || fail "no modelship-server next to $python"
port() { "$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
row=$("$python" -c 'import json, sys; sys.path.insert(0, sys.argv[1]); import run; print(json.dumps({"instances": [run.row("mlp")]}))' "$root/bench/server_throughput")

serve_and_measure() {  # flags…: sets taken (MiB the server added to the GPU) and total
  local before used rest pid log
  read -r before total < <(memory | tr ',' ' ')
  rest=$(port)
  log=$work/memory-check-$rest.log
  TF_CPP_MIN_LOG_LEVEL=2 "$server_bin" --model_name=mlp --model_base_path="$work/models/mlp" \
    --port=0 --rest_api_port="$rest" --host=127.0.0.1 "$@" >"$log" 2>&1 &
  pid=$!
  for _ in $(seq 240); do
    curl -sf "127.0.0.1:$rest/v2/health/ready" >/dev/null 2>&1 && break
    kill -0 "$pid" 2>/dev/null || { tail -20 "$log" >&2; fail "modelship-server $* exited"; }
    sleep 0.5
  done
  if ! curl -sf -d "$row" "127.0.0.1:$rest/v1/models/mlp:predict" >/dev/null; then
    kill "$pid"; tail -20 "$log" >&2; fail "predict failed with $*"
  fi
  if ! grep -q "modelship_server.runtime.devices: GPUs" "$log"; then
    kill "$pid"; tail -20 "$log" >&2; fail "the server did not configure the GPU ($*)"
  fi
  read -r used total < <(memory | tr ',' ' ')
  kill -TERM "$pid"
  wait "$pid" || true
  taken=$((used - before))
}

serve_and_measure --per_process_gpu_memory_fraction=0.25
quarter=$((total / 4))
step "--per_process_gpu_memory_fraction=0.25: the server took $taken MiB of $total (a quarter: $quarter, plus the CUDA context)"
((taken <= quarter + 1536)) || fail "the server took $taken MiB, over a quarter of $total MiB plus 1.5 GiB for the CUDA context"
((taken >= quarter * 8 / 10)) || fail "the server took $taken MiB: TensorFlow without memory growth should reserve about $quarter MiB"
fraction_taken=$taken
serve_and_measure --gpu_memory_growth
step "--gpu_memory_growth: the server took $taken MiB of $total"
((taken < fraction_taken)) || fail "with --gpu_memory_growth the server took $taken MiB, not less than the fraction's $fraction_taken"

# -- 5. throughput --------------------------------------------------------------------------------
grep -q '"--gpu"' "$root/bench/server_throughput/run.py" \
  || fail "bench/server_throughput/run.py has no --gpu flag yet (the change in the GPU readiness notes)"
procs=$(nproc)
procs=$((procs < 4 ? procs : 4))
servers=(modelship)
((procs > 1)) && servers+=("modelship-${procs}proc")
((peers)) && servers+=(kserve mlserver mlserver-batching)
step "benchmark on GPU $gpu: ${servers[*]}"
exec "$python" "$root/bench/server_throughput/run.py" --gpu --workdir "$work" \
  --models mlp half_plus_two --servers "${servers[@]}" \
  --modelship-batching server --server-arg=--gpu_memory_growth "$@"
