"""Settings: env nesting, frozen model, secrets masked everywhere."""

from __future__ import annotations

import json
import logging
import subprocess
import sys

import pydantic
import pytest

from wiki_lib.config import Settings, load_settings


def test_nested_env_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WIKI__KAFKA__BOOTSTRAP", "broker-a:9092,broker-b:9092")
    monkeypatch.setenv("WIKI__POSTGRES__PORT", "6543")
    monkeypatch.setenv("WIKI__STREAM__WATERMARK", "5 minutes")
    settings = load_settings()
    assert settings.kafka.bootstrap == "broker-a:9092,broker-b:9092"
    assert settings.postgres.port == 6543
    assert settings.stream.watermark == "5 minutes"
    assert settings.kafka.topic_raw == "wiki.recentchange.raw"


def test_invalid_env_is_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WIKI__POSTGRES__PORT", "not-a-port")
    with pytest.raises(pydantic.ValidationError):
        load_settings()


def test_settings_are_frozen() -> None:
    settings = load_settings()
    with pytest.raises(pydantic.ValidationError):
        settings.kafka.bootstrap = "elsewhere:1"  # type: ignore[misc]
    changed = settings.with_overrides(kafka={"bootstrap": "elsewhere:1"})
    assert changed.kafka.bootstrap == "elsewhere:1"
    assert settings.kafka.bootstrap != "elsewhere:1"


def test_secrets_never_printed(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "s3cr3t-Value-42"
    monkeypatch.setenv("WIKI__POSTGRES__WRITER_PASSWORD", secret)
    settings = load_settings()
    assert settings.postgres.writer_password.get_secret_value() == secret
    assert secret not in repr(settings)
    assert secret not in str(settings)
    assert secret not in json.dumps(settings.masked())
    with caplog.at_level(logging.INFO):
        logging.getLogger("wikipulse.test").info("settings: %s", settings)
    assert secret not in caplog.text
    assert secret in settings.postgres.dsn("writer")


def test_config_show_masks_secrets() -> None:
    secret = "another-s3cret"
    out = subprocess.run(
        [sys.executable, "-m", "wiki_lib.cli", "config", "show"],
        capture_output=True,
        text=True,
        check=True,
        env={
            "WIKI__POSTGRES__READER_PASSWORD": secret,
            "WIKI__SPARK__MASTER": "local[1]",
            "PATH": "/usr/bin:/bin",
        },
    )
    assert secret not in out.stdout + out.stderr
    shown = json.loads(out.stdout)
    assert shown["postgres"]["reader_password"] == "**********"
    assert shown["spark"]["master"] == "local[1]"


def test_every_cli_flag_names_its_env_variable() -> None:
    from wiki_lib.cli import build_parser

    parser = build_parser()
    missing = []

    def walk(p: object, path: str) -> None:
        for action in p._actions:  # type: ignore[attr-defined]
            documented = "[env: " in (action.help or "")
            if action.option_strings and action.dest not in {"help", "verbose"} and not documented:
                missing.append(f"{path} {action.option_strings[0]}")
            choices = getattr(action, "choices", None)
            if isinstance(choices, dict):
                for name, child in choices.items():
                    walk(child, f"{path} {name}")

    walk(parser, "wikipulse")
    assert missing == []


def test_defaults_describe_every_field() -> None:
    undocumented = [
        f"{section}.{name}"
        for section, field in Settings.model_fields.items()
        for name, sub in field.annotation.model_fields.items()  # type: ignore[union-attr]
        if not sub.description
    ]
    assert undocumented == []
