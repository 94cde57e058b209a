"""`tinyllama local --engine vllm`: where vLLM is found and the command line it is given."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from backend.adapters import compute_local
from backend.adapters.compute_local import CHATML_TEMPLATE, find_vllm, is_cpu_build, vllm_command
from backend.entrypoints.local import LocalStack


def fake_vllm(venv: Path, *, cpu: bool) -> Path:
    """A venv layout like install.sh's (CPU) or a plain `pip install vllm` (GPU)."""
    exe = venv / "bin/vllm"
    exe.parent.mkdir(parents=True)
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    site = venv / "lib/python3.12/site-packages"
    (site / ("vllm-0.32.0+cpu.dist-info" if cpu else "vllm-0.11.0.dist-info")).mkdir(parents=True)
    return exe


def model_dir(tmp_path: Path, template: str | None) -> Path:
    folder = tmp_path / "model"
    folder.mkdir()
    config = {"model_max_length": 2048} | ({"chat_template": template} if template else {})
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    return folder


def flag(cmd: list[str], name: str) -> str | None:
    return cmd[cmd.index(name) + 1] if name in cmd else None


@pytest.fixture(autouse=True)
def no_forced_device(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TINYLLAMA_VLLM_DEVICE", raising=False)
    monkeypatch.delenv("TINYLLAMA_VLLM", raising=False)


def test_cpu_build_gets_eager_mode_a_sized_kv_cache_and_a_context_limit(tmp_path: Path) -> None:
    exe = fake_vllm(tmp_path / "venv", cpu=True)
    assert is_cpu_build(exe)
    cmd = vllm_command(exe, str(model_dir(tmp_path, "{{ x }}")), 8123, workdir=str(tmp_path), max_model_len=512)
    assert cmd[:3] == [str(exe), "serve", str(tmp_path / "model")]
    assert flag(cmd, "--host") == "127.0.0.1" and flag(cmd, "--port") == "8123"
    assert flag(cmd, "--max-model-len") == "512"
    assert "--enforce-eager" in cmd
    assert flag(cmd, "--kv-cache-memory-bytes") == "1G"
    assert "--chat-template" not in cmd  # the model has its own


def test_gpu_build_keeps_cuda_graphs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    exe = fake_vllm(tmp_path / "venv", cpu=False)
    monkeypatch.setenv("TINYLLAMA_VLLM_DEVICE", "gpu")
    cmd = vllm_command(exe, "TinyLlama/TinyLlama-1.1B-Chat-v1.0", 8000, workdir=str(tmp_path))
    assert "--enforce-eager" not in cmd and "--kv-cache-memory-bytes" not in cmd
    assert flag(cmd, "--max-model-len") == "2048"


def test_a_model_without_a_chat_template_gets_chatml(tmp_path: Path) -> None:
    exe = fake_vllm(tmp_path / "venv", cpu=True)
    cmd = vllm_command(exe, str(model_dir(tmp_path, None)), 8000, workdir=str(tmp_path))
    template = flag(cmd, "--chat-template")
    assert template is not None and Path(template).read_text() == CHATML_TEMPLATE
    assert Path(template).parent == tmp_path  # in the stack's workdir, not the checkout


def test_the_users_flags_win(tmp_path: Path) -> None:
    exe = fake_vllm(tmp_path / "venv", cpu=True)
    cmd = vllm_command(exe, str(model_dir(tmp_path, None)), 8000, workdir=str(tmp_path),
                       extra=["--max-model-len=4096", "--chat-template", "/mine.jinja"])
    assert "--max-model-len" not in cmd and cmd.count("--chat-template") == 1
    assert cmd[-3:] == ["--max-model-len=4096", "--chat-template", "/mine.jinja"]


def test_vllm_is_found_where_the_tests_find_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    on_path = fake_vllm(tmp_path / "pathvenv", cpu=False)
    monkeypatch.setenv("PATH", f"{on_path.parent}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(compute_local, "_ROOT", tmp_path / "checkout")  # this checkout may have one
    assert find_vllm() == on_path
    local = fake_vllm(tmp_path / ".venv-vllm", cpu=True)
    assert find_vllm() == Path.cwd() / ".venv-vllm/bin/vllm" and local.exists()
    chosen = fake_vllm(tmp_path / "elsewhere", cpu=True)
    monkeypatch.setenv("TINYLLAMA_VLLM", str(chosen))
    assert find_vllm() == chosen


def test_local_stack_builds_the_command_from_tinyllama_vllm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    exe = fake_vllm(tmp_path / "venv", cpu=True)
    monkeypatch.setenv("TINYLLAMA_VLLM", str(exe))
    monkeypatch.setenv("PATH", "/nonexistent")
    stack = LocalStack(engine="vllm", model=str(model_dir(tmp_path, None)), workdir=str(tmp_path),
                       vllm_args=["--dtype", "float32"])
    stack._engine_port = 8555
    cmd = stack._engine_cmd()
    assert cmd is not None and cmd[0] == str(exe)
    assert "--enforce-eager" in cmd and flag(cmd, "--chat-template") and cmd[-2:] == ["--dtype", "float32"]
