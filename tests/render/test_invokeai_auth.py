"""A real InvokeAI 6.14.2 in multiuser mode (its login issues the Bearer token): without the token the
server refuses and the run says so (exit 5); with it, from a private token file, the daemon's client
gets in; the token never appears in what we print."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import yaml

from ai_wallpaper.cli import main
from ai_wallpaper.core.errors import ExitCode
from ai_wallpaper.core.paths import Paths
from tests.invokeai_server import InvokeAIServer, find_assets, free_port

EMAIL, PASSWORD = "wallpaper@example.org", "A-long-test-passphrase-7"


@pytest.fixture(scope="module")
def multiuser_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[InvokeAIServer, str]]:
    from tests.conftest import _test_assets_folder

    found = find_assets(_test_assets_folder())
    if found is None:
        pytest.fail("the InvokeAI test environment is missing: run `make test-assets`")
    venv = found[0]
    root = tmp_path_factory.mktemp("invokeai-multiuser")
    port = free_port()
    (root / "invokeai.yaml").write_text(f"schema_version: 4.0.2\nhost: 127.0.0.1\nport: {port}\nmultiuser: true\n")
    server = InvokeAIServer(venv=venv, root=root, port=port)
    server.start()
    subprocess.run([str(venv / "bin" / "invoke-useradd"), "--root", str(root), "--email", EMAIL, "--password",
                    PASSWORD, "--name", "wallpaper", "--admin"], check=True, capture_output=True, timeout=120)
    answer = requests.post(f"{server.url}/api/v1/auth/login", json={"email": EMAIL, "password": PASSWORD},
                           timeout=30)
    answer.raise_for_status()
    token = answer.json()["token"]
    yield server, token
    server.stop()


def _config(paths: Paths, url: str, **invokeai: str) -> Path:
    paths.config_dir.mkdir(parents=True, exist_ok=True)
    file = paths.config_dir / "settings.yaml"
    file.write_text(yaml.safe_dump({"render": {"backend": "invokeai"}, "weather": {"enabled": False},
                                    "invokeai": {"url": url, **invokeai}}))
    return file


def test_without_the_token_the_server_refuses_and_we_say_why(multiuser_server: tuple[InvokeAIServer, str],
                                                           paths: Paths, monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    server, _ = multiuser_server
    monkeypatch.delenv("AI_WALLPAPER_INVOKEAI_TOKEN", raising=False)
    assert main(["doctor", "--config", str(_config(paths, server.url))]) == ExitCode.RUN
    assert "refused the request (401): the access token is missing or wrong" in capsys.readouterr().err


def test_the_login_token_from_a_private_file_gets_in(multiuser_server: tuple[InvokeAIServer, str], paths: Paths,
                                                     tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    server, token = multiuser_server
    token_file = tmp_path / "invokeai-token"
    token_file.write_text(token + "\n")
    os.chmod(token_file, 0o600)
    code = main(["doctor", "--config", str(_config(paths, server.url, token_file=str(token_file)))])
    out = capsys.readouterr()
    # In: the version and the (empty) model list were read; the missing models are the only problems.
    assert f"(InvokeAI 6.14.2, queue default, token: file {token_file})" in out.out
    assert code == ExitCode.FAILURE and "the server has no sdxl main model" in out.out
    assert token not in out.out + out.err
