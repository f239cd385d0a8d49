"""Settings that arrive while repoctx runs (an editor's, a client's): how they are read and
what a change needs.

A client may send its settings bare or under a ``repoctx`` key; either way they are merged
into a copy of the running configuration first, so that invalid settings change nothing.
What a change needs (`ConfigChange`): engine settings in `ENGINE_RELOAD_KEYS` need a new
engine; another prompt template needs a new `repoctx.pipeline.Completer`; completions made
under other settings are not offered again; ``workspace`` and ``index`` settings apply
fully after a restart (the open index keeps its files and chunks).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .config import Config, ConfigError

__all__ = ["ENGINE_RELOAD_KEYS", "ConfigChange", "compare", "merged", "unwrap"]

ENGINE_RELOAD_KEYS = frozenset({"kind", "model", "endpoint", "api_key", "threads", "context_window", "rope", "extra"})
"""Engine settings that need a new engine; the others (max_tokens, temperature, timeout_s) apply per request."""

RESTART_SECTIONS = ("workspace", "index")
"""Sections that apply fully only after a restart."""


def unwrap(data: Any) -> dict[str, Any]:
    """A settings object, bare or as ``{"repoctx": {...}}``; ConfigError for anything but an object."""
    if not isinstance(data, dict):
        raise ConfigError(f"the configuration must be an object, got {type(data).__name__}")
    if set(data) == {"repoctx"} and isinstance(data["repoctx"], dict):
        return data["repoctx"]
    return data


def merged(base: Config, data: Any) -> Config:
    """A new configuration: `base` with the settings `data` merged in; ConfigError (and `base`
    untouched) when they are not valid."""
    settings = unwrap(data)
    try:
        config = Config.from_dict(base.to_dict())
        config.update(settings)
    except ConfigError:
        raise
    except (TypeError, ValueError, AttributeError) as exc:
        raise ConfigError(str(exc)) from None
    return config


@dataclass(frozen=True)
class ConfigChange:
    """What going from one configuration to another needs."""

    changed: bool
    engine_keys: frozenset[str]  # engine settings that differ
    reload_engine: bool  # a new engine (ENGINE_RELOAD_KEYS changed)
    new_template: bool  # a new Completer, for the prompt format is chosen when one is built
    cache_size: bool  # the completion cache's size changed
    restart_sections: tuple[str, ...]  # sections that apply fully only after a restart


def compare(before: Config, after: Config) -> ConfigChange:
    old, new = before.to_dict(), after.to_dict()
    engine_keys = frozenset(key for key in new["engine"] if old["engine"][key] != new["engine"][key])
    reload_engine = bool(engine_keys & ENGINE_RELOAD_KEYS)
    return ConfigChange(
        changed=old != new,
        engine_keys=engine_keys,
        reload_engine=reload_engine,
        new_template=not reload_engine and "template" in engine_keys,
        cache_size=old["completion"]["cache_size"] != new["completion"]["cache_size"],
        restart_sections=tuple(section for section in RESTART_SECTIONS if old[section] != new[section]),
    )
