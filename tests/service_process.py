"""The service process of the end-to-end tests: `riverguard serve` with one all-scope key."""

from __future__ import annotations

from app.tools.service_process import RIVERGUARD, ServiceProcess

KEY = "e2e-key"

__all__ = ["KEY", "RIVERGUARD", "ServiceProcess", "serve"]


def serve(env: dict[str, str]) -> ServiceProcess:
    """A service with ``env`` on top of the test key (not started)."""
    return ServiceProcess({"RIVERGUARD_API_KEYS": f"{KEY}=score|label|admin", **env})
