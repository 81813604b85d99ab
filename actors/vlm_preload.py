"""Imported by the fork server of actors/vlm_process.py, before it forks vLLM's engine-core process.

Any failure is left for the forked process, which imports what it needs itself and reports it.
"""

try:
    from actors.torchvision_cpu import patch_cpu_torchvision

    patch_cpu_torchvision()  # CI's CPU torch beside PyPI's torchvision; nothing on GPU installs
    import vllm.v1.engine.core  # noqa: F401
except Exception:  # noqa: BLE001
    pass
