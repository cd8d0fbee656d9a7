"""Plugins: the hook specs, the manager, and the built-in plugins."""

import pluggy

hookimpl = pluggy.HookimplMarker("abonnement")

__all__ = ["hookimpl"]
