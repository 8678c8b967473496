"""What every process of a run must agree on: errors raised on the main process, and when to stop."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from adaptkit.errors import UserError


def on_main_process(accelerator: Any, action: Callable[[], Any]) -> Any:
    """Run ``action`` on the main process only and return its result there (None elsewhere); its
    UserError is raised on every process.

    The error lines and exit status are broadcast (``broadcast_object_list``, a barrier too), so the
    other ranks exit with the same message instead of waiting forever in ``wait_for_everyone``;
    each prints it before a second barrier, so none is stopped by torchrun before it has.
    """
    lines: list[str] = []
    code = UserError.exit_code
    failure: UserError | None = None
    result = None
    if accelerator.is_main_process:
        try:
            result = action()
        except UserError as exc:
            failure, lines, code = exc, exc.lines, exc.exit_code
    if accelerator.num_processes > 1:
        from accelerate.utils import broadcast_object_list

        lines, code = broadcast_object_list([(lines, code)])[0]
    if lines:
        error = failure or UserError(*lines)
        error.exit_code = code
        if accelerator.num_processes > 1:
            error.print_on_every_process(accelerator.wait_for_everyone)
        raise error
    return result


def agreed_stop_signal(accelerator: Any, signum: int | None) -> int:
    """The stop signal any process received (all processes must stop at the same step)."""
    if accelerator.num_processes == 1:
        return signum or 0
    flag = torch.tensor(signum or 0, device=accelerator.device)
    return int(accelerator.reduce(flag, reduction="max").item())


def agreed(accelerator: Any, flag: bool) -> bool:
    """True on every process when ``flag`` is true on any (e.g. the main process's early-stop decision)."""
    if accelerator.num_processes == 1:
        return flag
    value = torch.tensor(int(flag), device=accelerator.device)
    return bool(accelerator.reduce(value, reduction="max").item())
