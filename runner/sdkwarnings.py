"""The Google SDKs speak on stderr (support-policy FutureWarning banners on import, an experimental-API notice on
first use): a user of tuner should see tuner's output only. The filters are narrow, by category and origin or
message, so any other warning still shows."""

from __future__ import annotations

import warnings


def quiet_sdk_banners() -> None:
    """Call before importing a Google SDK. Idempotent: an identical filter replaces itself."""
    # google-generativeai warns with a stacklevel that names the importing module, so its message marks it.
    warnings.filterwarnings("ignore", category=FutureWarning,
                            message=r"\s*All support for the `google\.generativeai` package has ended")
    # google.api_core: "You are using a Python version ... Google will stop supporting".
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"google\.api_core\._python_version_support")
    # google-genai calls tunings.tune experimental (an ExperimentalWarning, once per process, at the first job).
    warnings.filterwarnings("ignore", message=r"The SDK's tuning implementation is experimental")
