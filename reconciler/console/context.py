"""What every page module of the console gets (its own module: page modules import it, and
:mod:`reconciler.console.routes` imports the page modules)."""

from __future__ import annotations

from dataclasses import dataclass

from reconciler.auth.dependencies import Auth
from reconciler.config import ApiConfig
from reconciler.console.live import LiveFeed
from reconciler.engine import Engine

__all__ = ["ConsoleContext"]


@dataclass(frozen=True, slots=True)
class ConsoleContext:
    """What every page module gets: the engine, who may do what, the live feed."""

    engine: Engine
    auth: Auth
    config: ApiConfig
    live: LiveFeed

    @property
    def site(self) -> str:
        """The reconciler's site (shown in every page's header)."""
        return self.engine.site
