"""The local hub reads the chart's values: what carries over, what stays, what users inherit."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml
from traitlets.config import Config

from wiki_lib.config import load_settings
from wiki_lib.hub import (
    HUB_VALUES,
    PASSWORD_ENV,
    chart_hub_config,
    find_proxy,
    hub_options,
    user_environment,
    write_config,
)


def test_chart_values_become_traitlets() -> None:
    values = yaml.safe_load(HUB_VALUES.read_text())
    config = chart_hub_config(values)
    assert config["JupyterHub"]["authenticator_class"] == "shared-password"
    assert config["Authenticator"] == values["hub"]["config"]["Authenticator"]
    assert config["Spawner"]["default_url"] == values["singleuser"]["defaultUrl"]
    assert config["Spawner"]["start_timeout"] == values["singleuser"]["startTimeout"]
    (cmd,) = config["Spawner"]["cmd"]
    assert Path(cmd).name == values["singleuser"]["cmd"] and os.access(cmd, os.X_OK)


def test_users_never_inherit_the_admin_or_writer_password() -> None:
    environ = {
        "WIKI__POSTGRES__HOST": "db",
        "WIKI__POSTGRES__READER_PASSWORD": "r",
        "WIKI__POSTGRES__WRITER_PASSWORD": "w",
        "WIKI__POSTGRES__ADMIN_PASSWORD": "a",
        "HOME": "/root",
    }
    assert user_environment(environ) == {
        "WIKI__POSTGRES__HOST": "db",
        "WIKI__POSTGRES__READER_PASSWORD": "r",
    }


def test_generated_config_applies_values_and_local_parts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = load_settings(stack={"state_dir": str(tmp_path)}, postgres={"port": 6543})
    options = hub_options(settings, port=18123, proxy_command=find_proxy())
    config_file = write_config(options)
    assert oct(config_file.with_name("options.json").stat().st_mode & 0o777) == "0o600"
    monkeypatch.setenv(PASSWORD_ENV, "a-long-shared-password")
    c = Config()
    exec(compile(config_file.read_text(), str(config_file), "exec"), {"c": c})

    assert c.JupyterHub.bind_url == "http://127.0.0.1:18123/"
    assert c.JupyterHub.authenticator_class == "shared-password"
    assert c.JupyterHub.spawner_class == "simple"
    assert c.SimpleLocalProcessSpawner.home_dir_template.startswith(str(tmp_path))
    assert c.SharedPasswordAuthenticator.user_password == "a-long-shared-password"
    assert c.Spawner.default_url == "/lab"
    assert c.Spawner.environment["WIKI__POSTGRES__PORT"] == "6543"
    assert "WIKI__POSTGRES__WRITER_PASSWORD" not in c.Spawner.environment
    assert c.ConfigurableHTTPProxy.command == [options.proxy_command]
    assert options.hub_port != options.proxy_api_port


def test_missing_proxy_says_how_to_install_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from wiki_lib import hub
    from wiki_lib.errors import PrerequisiteError

    monkeypatch.setattr(hub, "REPO_ROOT", tmp_path)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(PrerequisiteError, match=r"tools\.sh"):
        find_proxy()
    assert find_proxy("/bin/sh") == "/bin/sh"
