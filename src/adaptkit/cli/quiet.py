"""Keep third-party chatter (download bars, harmless backend warnings) off the user's terminal.

``ADAPTKIT_VERBOSE=1`` leaves every library's own logging as it is.
"""

from __future__ import annotations

import logging
import os


def quiet_third_party() -> None:
    """Lower library log levels and disable their progress bars (adaptkit shows its own)."""
    if os.environ.get("ADAPTKIT_VERBOSE"):
        return
    # bitsandbytes warns about an optional CPU kernel package; transformers about torchvision,
    # which adaptkit deliberately does without (see the README).
    for name in ("bitsandbytes", "transformers", "diffusers", "datasets", "accelerate", "peft"):
        logging.getLogger(name).setLevel(logging.ERROR)
    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    try:
        from diffusers.utils import logging as diffusers_logging

        diffusers_logging.set_verbosity_error()
        diffusers_logging.disable_progress_bar()
    except ImportError:  # pragma: no cover
        pass
    try:
        from transformers.utils import logging as transformers_logging

        transformers_logging.set_verbosity_error()
        transformers_logging.disable_progress_bar()
    except ImportError:  # pragma: no cover
        pass
    try:
        from datasets.utils import logging as datasets_logging

        datasets_logging.disable_progress_bar()
    except ImportError:  # pragma: no cover
        pass
