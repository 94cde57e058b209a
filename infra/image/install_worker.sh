#!/bin/bash
# Install the TinyLlama GPU worker: vLLM, the worker package, the model's weights, the
# CloudWatch agent and the systemd units that start them at boot.
#
#   install_worker.sh WORKER_WHEEL MODEL
#
# WORKER_WHEEL is the worker-only package (no Qt); it installs the `tinyllama-worker`
# command the unit below runs. VLLM_SPEC picks vLLM (default: the version named below).
#
# Runs as root on Ubuntu 22.04 with an NVIDIA driver (the Deep Learning Base AMI, or the
# Image Builder component after it installs the driver). Used twice: by the Image Builder
# component that bakes the AMI, and by the stack's user data on a first boot from a plain
# AMI. Everything lands on the root volume, so a stopped instance keeps it.
set -euo pipefail

wheel=${1:?usage: [VLLM_SPEC=vllm==X.Y.Z] install_worker.sh WORKER_WHEEL MODEL}
model=${2:?usage: [VLLM_SPEC=vllm==X.Y.Z] install_worker.sh WORKER_WHEEL MODEL}
# Pinned, so every bake and every first boot gets the engine that was tested on a T4.
# 0.6.6.post1: its default (V0) engine runs on T4 (compute capability 7.5) with the
# xformers attention backend; the V1 engine did not support T4 until FlexAttention
# (vllm-project/vllm#23614, Aug 2025). infra/NOTES.md, "The worker image".
vllm_spec=${VLLM_SPEC:-vllm==0.6.6.post1}
prefix=/opt/tinyllama
export DEBIAN_FRONTEND=noninteractive
# On a first boot cloud-init and unattended-upgrades hold the dpkg lock for minutes; wait
# for it (up to 10 min) instead of failing the install.
apt_get() { apt-get -o DPkg::Lock::Timeout=600 "$@"; }
# pip's wheel cache would stay on the root volume (GBs for torch), paid per GB-month.
export PIP_NO_CACHE_DIR=1

nvidia-smi >/dev/null || { echo "no NVIDIA driver: install it first" >&2; exit 1; }

# The package needs Python >= 3.11 (pyproject.toml); Ubuntu 22.04's python3 is 3.10.
python=${PYTHON:-python3.11}
if ! "$python" -c 'import ensurepip, venv' 2>/dev/null; then
  apt_get update -q
  apt_get install -y -q "$python" "$python-venv"
fi

id tinyllama >/dev/null 2>&1 || useradd --system --home-dir "$prefix" --shell /usr/sbin/nologin tinyllama
install -d -o tinyllama -g tinyllama "$prefix" "$prefix/hf" /var/log/tinyllama
"$python" -m venv "$prefix/venv"
"$prefix/venv/bin/pip" install --no-cache-dir --quiet --upgrade pip
"$prefix/venv/bin/pip" install --no-cache-dir --quiet "$vllm_spec" "$wheel"

# Weights on the instance's own gp3 volume, so a wake never downloads them (DESIGN.md).
sudo -u tinyllama env HF_HOME="$prefix/hf" \
  "$prefix/venv/bin/python" -c 'import sys; from huggingface_hub import snapshot_download; snapshot_download(sys.argv[1])' "$model"

# vLLM starts as early in boot as it can (the slow part of a wake), so it needs nothing
# from user data: the model it serves is recorded here.
# --dtype half: T4 has no bf16 (vLLM would refuse the bf16 weights TinyLlama ships).
# --enforce-eager: no CUDA-graph capture at start-up. Capture costs 10-30 s on every
# wake; eager mode costs decode speed (kernel launch overhead, worst at batch 1). A
# 1.1B model on a T4 decodes far faster than a person reads either way, while every
# wake pays the capture, so the cold start wins (infra/NOTES.md, "The worker image").
install -d -m 0755 /etc/tinyllama
echo "MODEL=$model" > /etc/tinyllama/model.env
cat > /etc/systemd/system/vllm.service <<UNIT
[Unit]
Description=vLLM OpenAI-compatible server on 127.0.0.1:8000
After=network.target

[Service]
User=tinyllama
EnvironmentFile=/etc/tinyllama/model.env
Environment=HF_HOME=$prefix/hf HF_HUB_OFFLINE=1
ExecStart=$prefix/venv/bin/vllm serve \${MODEL} --host 127.0.0.1 --port 8000 --dtype half --enforce-eager
StandardOutput=append:/var/log/tinyllama/vllm.log
StandardError=inherit
Restart=on-failure
RestartSec=5

[Install]
WantedBy=multi-user.target
UNIT

# First SIGTERM stops the worker warm (finishes what runs), the second cold.
cat > /etc/systemd/system/tinyllama-worker.service <<UNIT
[Unit]
Description=TinyLlama worker (Redis queue -> vLLM)
After=network-online.target vllm.service
Wants=network-online.target vllm.service

[Service]
User=tinyllama
EnvironmentFile=/etc/tinyllama/model.env
EnvironmentFile=/etc/tinyllama/worker.env
ExecStart=$prefix/venv/bin/tinyllama-worker
StandardOutput=append:/var/log/tinyllama/worker.log
StandardError=inherit
KillSignal=SIGTERM
TimeoutStopSec=90
Restart=on-failure
RestartSec=5

[Install]
WantedBy=multi-user.target
UNIT

# The CloudWatch agent: both logs, and the GPU's utilisation and memory.
if ! [ -x /opt/aws/amazon-cloudwatch-agent/bin/amazon-cloudwatch-agent-ctl ]; then
  curl -fsSL -o /tmp/amazon-cloudwatch-agent.deb \
    https://s3.amazonaws.com/amazoncloudwatch-agent/ubuntu/amd64/latest/amazon-cloudwatch-agent.deb
  apt_get install -y -q /tmp/amazon-cloudwatch-agent.deb  # apt, so it waits for the lock too
fi
cat > "$prefix/configure-cloudwatch.sh" <<'SCRIPT'
#!/bin/bash
# configure-cloudwatch.sh LOG_GROUP: ship the worker's logs there and start the agent.
set -euo pipefail
group=${1:?usage: configure-cloudwatch.sh LOG_GROUP}
cat > /opt/aws/amazon-cloudwatch-agent/etc/tinyllama.json <<JSON
{
  "agent": {"metrics_collection_interval": 60},
  "metrics": {
    "append_dimensions": {"InstanceId": "\${aws:InstanceId}"},
    "metrics_collected": {"nvidia_gpu": {"measurement": ["utilization_gpu", "memory_used"]}}
  },
  "logs": {"logs_collected": {"files": {"collect_list": [
    {"file_path": "/var/log/tinyllama/worker.log", "log_group_name": "$group", "log_stream_name": "{instance_id}/worker"},
    {"file_path": "/var/log/tinyllama/vllm.log", "log_group_name": "$group", "log_stream_name": "{instance_id}/vllm"}
  ]}}}
}
JSON
/opt/aws/amazon-cloudwatch-agent/bin/amazon-cloudwatch-agent-ctl -a fetch-config -m ec2 \
  -c file:/opt/aws/amazon-cloudwatch-agent/etc/tinyllama.json -s
SCRIPT
chmod 0755 "$prefix/configure-cloudwatch.sh"

# Both units append to files; keep a week of them.
cat > /etc/logrotate.d/tinyllama <<'ROTATE'
/var/log/tinyllama/*.log {
  daily
  rotate 7
  compress
  missingok
  notifempty
  copytruncate
}
ROTATE

systemctl daemon-reload
systemctl enable vllm.service tinyllama-worker.service
echo "TinyLlama worker installed in $prefix (model $model)"
