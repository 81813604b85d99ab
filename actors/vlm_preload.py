"""Imported by the fork server of actors/vlm_process.py, before it forks vLLM's engine-core process.

The server ends with the actor that started it (SIGKILL when its parent exits: it holds nothing to
clean up), and its forked engine cores end with it. Any failure to import vLLM is left for the
forked process, which imports what it needs itself and reports it.
"""

import os
import signal

from actors import vlm_process

vlm_process.die_with_parent(signal.SIGKILL, int(os.environ.get("HYBRIDOCR_FORKSERVER_PARENT", "0")) or None)
try:
    from actors.torchvision_cpu import patch_cpu_torchvision

    patch_cpu_torchvision()  # CI's CPU torch beside PyPI's torchvision; nothing on GPU installs
    import vllm.v1.engine.core  # noqa: F401
except Exception:  # noqa: BLE001
    pass
