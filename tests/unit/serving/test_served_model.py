"""Which model a server serves: the bento's pinned tag, else MLGITOPS_MODEL_TAG, never the
newest entry of the model store."""

from __future__ import annotations

import logging

from hypothesis import given
from hypothesis import strategies as st

from mlgitops.serving.package import MODEL_ALIAS, MODEL_TAG_ENV, model_tag, served_model_tag

md5s = st.text(alphabet="0123456789abcdef", min_size=32, max_size=32)
other_aliases = st.dictionaries(
    st.text(min_size=1, max_size=12).filter(lambda name: name != MODEL_ALIAS), st.text(max_size=20)
)


@given(pinned=md5s, named=md5s, others=other_aliases)
def test_a_bento_serves_the_model_it_pins_whatever_the_environment_names(pinned, named, others):
    # Given a bento's alias (and any other aliases), whatever MLGITOPS_MODEL_TAG names, then
    # the bento's model is served.
    aliases = {**others, MODEL_ALIAS: model_tag(pinned)}
    for environ in ({}, {MODEL_TAG_ENV: model_tag(named)}):
        assert served_model_tag(aliases, environ) == model_tag(pinned), environ


@given(named=md5s, others=other_aliases)
def test_from_source_the_environment_names_the_model(named, others):
    # Given no bento alias, then the tag MLGITOPS_MODEL_TAG names is served (spaces trimmed).
    environ = {MODEL_TAG_ENV: f" {model_tag(named)} "}
    assert served_model_tag(others, environ) == model_tag(named)


@given(others=other_aliases, blank=st.sampled_from(["", " ", "\t"]))
def test_nothing_named_serves_nothing_not_the_newest(others, blank):
    # Given neither a bento alias nor a tag in the environment, then no model is chosen (the
    # service stops saying how to choose one) rather than the store's newest entry.
    assert served_model_tag(others, {}) is None
    assert served_model_tag(others, {MODEL_TAG_ENV: blank}) is None


def test_an_environment_naming_another_model_than_the_bento_is_warned_about(caplog):
    # Given a bento pinning one model and the environment naming another, then a warning
    # names both, and the bento's is served.
    pinned, named = model_tag("a" * 32), model_tag("b" * 32)
    with caplog.at_level(logging.WARNING):
        served = served_model_tag({MODEL_ALIAS: pinned}, {MODEL_TAG_ENV: named})
    assert served == pinned
    assert pinned in caplog.text, caplog.text
    assert named in caplog.text, caplog.text
