"""The configuration reference is read from the schema: every key documented, the page in
docs/ current, and ``sharedppo --help`` built from the same rows."""

from __future__ import annotations

from pathlib import Path

from sharedppo.cli.reference import key_docs, markdown, terminal
from sharedppo.config import Config, schema_keys

PAGE = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"


def test_every_key_has_help_and_a_line_in_the_reference():
    docs = {d.key: d for d in key_docs()}
    assert list(docs) == schema_keys(Config)
    assert not [k for k, d in docs.items() if len(d.help) < 10], "a key without help text"
    assert docs["ppo.clip_ratio"].allowed == "in (0, 1)"
    assert docs["env.id"].default == "CartPole-v1"  # a bare `sharedppo`'s, not the schema's ???
    text = terminal()
    assert all(f"    {k}=" in text for k in docs)


def test_the_docs_page_is_current():
    # On failure: python scripts/config_reference.py
    assert PAGE.read_text() == markdown()
