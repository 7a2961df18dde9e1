"""The kernels report runs start: on Unix sockets in Jupyter's runtime folder, not TCP ports.

papermill (through nbclient) starts one kernel per report run; by default it
listens on TCP ports of 127.0.0.1, which any local user can reach and which
ipykernel warns about on every start ("Kernel is running over TCP without
encryption"). :class:`SocketKernelManager` starts it on ``ipc`` transport:
sockets named by a random prefix in the user's private Jupyter runtime
folder (removed when the kernel shuts down). Named to nbclient by import path
(``kernel_manager_class``), so this module is imported only when a report runs.

Examples
--------
>>> SocketKernelManager(kernel_name="python3").transport
'ipc'

"""

from __future__ import annotations

import uuid
from pathlib import Path

from jupyter_client.manager import AsyncKernelManager
from jupyter_core.paths import jupyter_runtime_dir
from traitlets import default

__all__ = ["SocketKernelManager"]


class SocketKernelManager(AsyncKernelManager):
    """An ``AsyncKernelManager`` whose kernels talk over Unix sockets (``ipc``)."""

    @default("transport")
    def _transport_default(self) -> str:
        return "ipc"

    @default("ip")
    def _ip_default(self) -> str:
        # an absolute prefix: the kernel starts in its notebook's folder, this process elsewhere
        folder = Path(jupyter_runtime_dir())
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        return str(folder / f"eventkit-kernel-{uuid.uuid4().hex}")
