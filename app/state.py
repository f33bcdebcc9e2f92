"""The typed state the lifespan builds and the routes read (one object, no globals)."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request

from app.config import Settings
from app.health import Readiness
from app.resources import Backends


@dataclass
class AppState:
    settings: Settings
    backends: Backends
    readiness: Readiness


def get_state(request: Request) -> AppState:
    state: AppState = request.app.state.riverguard
    return state
