"""Settings that arrive while running: unwrapping, merging and what a change needs."""

import pytest

from repoctx.config import Config, ConfigError
from repoctx.reconfigure import compare, merged


def test_settings_bare_or_under_repoctx_merge_into_a_copy():
    base = Config()
    for data in ({"engine": {"maxTokens": 12}}, {"repoctx": {"engine": {"max_tokens": 12}}}):
        config = merged(base, data)
        assert config.engine.max_tokens == 12 and base.engine.max_tokens != 12


@pytest.mark.parametrize("data", [["engine"], {"engine": {"nope": 1}}, {"engine": {"max_tokens": "many"}}, {"nope": {}}])
def test_invalid_settings_are_a_config_error_and_change_nothing(data):
    base = Config()
    before = base.to_dict()
    with pytest.raises(ConfigError):
        merged(base, data)
    assert base.to_dict() == before


def test_what_a_change_needs():
    base = Config()
    assert not compare(base, merged(base, {})).changed
    per_request = compare(base, merged(base, {"engine": {"temperature": 0.5}}))
    assert per_request.changed and not per_request.reload_engine and not per_request.new_template
    reload = compare(base, merged(base, {"engine": {"model": "other.gguf", "template": "starcoder2"}}))
    assert reload.reload_engine and not reload.new_template  # a new engine gets a new completer anyway
    template = compare(base, merged(base, {"engine": {"template": "starcoder2"}}))
    assert template.new_template and not template.reload_engine
    assert compare(base, merged(base, {"completion": {"cache_size": 3}})).cache_size
    assert compare(base, merged(base, {"index": {"chunk_lines": 7}})).restart_sections == ("index",)
