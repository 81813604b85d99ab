"""How an actor waits for its GPU (actors/cuda_sync.py): CUDA's scheduling flag, set through the driver."""

from __future__ import annotations

import subprocess
import sys

import pytest

from actors.cuda_sync import SCHEDULES, set_schedule
from actors.paddle_ocr import cuda_options
from pipeline.config import RunConfig


def test_the_schedule_is_checked_and_a_machine_without_a_driver_is_left_alone():
    """On a machine without a CUDA driver (CI) nothing is set and nothing fails; a wrong name says the right ones.
    The GPU run of `gpu.sh` checks the flag itself (its `CUDA schedule` log lines)."""
    with pytest.raises(ValueError, match="blocking"):
        set_schedule("busy")
    assert RunConfig().paddle.cuda_schedule == "auto" and set(SCHEDULES) == {"auto", "spin", "yield", "blocking"}
    code = ("from actors.cuda_sync import set_schedule, schedule_of; "
            "print(set_schedule('blocking'), schedule_of(0), set_schedule('auto'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split("\n")[0]
    assert out == "[] None []"
    # the GPU providers' options set it before the first GPU session, and stay ONNX Runtime's own options
    assert set(cuda_options(RunConfig().paddle)) == {"cudnn_conv_algo_search", "arena_extend_strategy"}


def test_mps_is_seen_where_cuda_looks_for_its_daemon(tmp_path, monkeypatch):
    """A CUDA client goes through MPS when the control daemon listens in its pipe directory
    (CUDA_MPS_PIPE_DIRECTORY, else /tmp/nvidia-mps): the `control` socket the daemon makes there, not a process name."""
    import socket

    from actors.cuda_sync import mps_active, mps_pipe_dir

    monkeypatch.setenv("CUDA_MPS_PIPE_DIRECTORY", str(tmp_path))
    assert mps_pipe_dir() == str(tmp_path) and not mps_active()
    with socket.socket(socket.AF_UNIX) as control:  # as `nvidia-cuda-mps-control -d` listens there
        control.bind(str(tmp_path / "control"))
        assert mps_active()
    monkeypatch.delenv("CUDA_MPS_PIPE_DIRECTORY")
    assert mps_pipe_dir() == "/tmp/nvidia-mps"
