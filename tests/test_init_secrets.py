"""scripts/init-secrets, the first start of docker compose and scripts/stack: run for real with
the shell the compose image has (POSIX sh), in fresh directories."""
from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.support.procs import REPO

pytestmark = pytest.mark.integration

SCRIPT = REPO / "scripts" / "init-secrets"
ROOT = os.geteuid() == 0
PASSWORD_LINE = re.compile(r"has the password (\S+) \(shown this once\)")


def init_secrets(target: Path, provided: Path | None = None, **env: str) -> str:
    """One run of the script; its output."""
    clean = {k: v for k, v in os.environ.items() if k not in ("GRAFANA_ADMIN_PASSWORD",
                                                              "SECRET_OWNERS", "PROVIDED_DIR")}
    if provided is not None:
        clean["PROVIDED_DIR"] = str(provided)
    done = subprocess.run([shutil.which("sh") or "/bin/sh", str(SCRIPT), str(target)],
                          env={**clean, **env}, capture_output=True, text=True, timeout=30,
                          check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


def contents(directory: Path) -> dict[str, str]:
    return {path.name: path.read_text() for path in sorted(directory.iterdir())}


def test_a_fresh_directory_gets_private_random_secrets_and_the_password_once(tmp_path):
    first = init_secrets(tmp_path / "a")
    made = contents(tmp_path / "a")
    assert set(made) == {"bridge_token", "grafana_admin_password"}
    assert all(re.fullmatch(r"[A-Za-z0-9]{40}", value) for value in made.values())
    assert PASSWORD_LINE.findall(first) == [made["grafana_admin_password"]]
    assert made["bridge_token"] not in first

    # Only this user may read them (as root: 0440, for the uid:gid SECRET_OWNERS names).
    file_mode, dir_mode = (0o440, 0o711) if ROOT else (0o600, 0o700)
    assert stat.S_IMODE((tmp_path / "a").stat().st_mode) == dir_mode
    for path in (tmp_path / "a").iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == file_mode, path.name

    init_secrets(tmp_path / "b")
    assert not set(contents(tmp_path / "b").values()) & set(made.values())  # random each time


def test_a_second_start_regenerates_nothing_and_prints_no_password(tmp_path):
    init_secrets(tmp_path)
    made = contents(tmp_path)
    second = init_secrets(tmp_path)
    assert contents(tmp_path) == made
    assert not PASSWORD_LINE.search(second) and made["grafana_admin_password"] not in second
    assert "bridge_token: kept" in second and "grafana_admin_password: kept" in second


def test_provided_values_win_and_removed_ones_go(tmp_path):
    provided = tmp_path / "provided"
    shutil.copytree(REPO / "alertmanager" / "secrets", provided,
                    ignore=lambda _, names: [n for n in names if not n.endswith(".example")])
    target = tmp_path / "secrets"
    init_secrets(target, provided)  # generated first, then the user adds their own
    (provided / "bridge_token").write_text("the-users-token\n")
    (provided / "slack_api_url").write_text("https://hooks.slack.com/services/T/B/X\n")
    output = init_secrets(target, provided, GRAFANA_ADMIN_PASSWORD="from-dot-env")
    assert contents(target) == {"bridge_token": "the-users-token\n",
                                "grafana_admin_password": "from-dot-env",
                                "slack_api_url": "https://hooks.slack.com/services/T/B/X\n"}
    assert not PASSWORD_LINE.search(output) and "from-dot-env" not in output
    assert "slack_api_url: not provided" not in output

    (provided / "slack_api_url").unlink()
    output = init_secrets(target, provided)
    assert "slack_api_url" not in contents(target)
    assert "slack_api_url: removed" in output
    assert contents(target)["bridge_token"] == "the-users-token\n"  # the last one it was given


def test_a_copied_example_is_flagged(tmp_path):
    provided = tmp_path / "provided"
    shutil.copytree(REPO / "alertmanager" / "secrets", provided)
    shutil.copy(provided / "bridge_token.example", provided / "bridge_token")
    output = init_secrets(tmp_path / "secrets", provided)
    assert f"warning: {provided / 'bridge_token'} is still its .example placeholder" in output


def test_missing_optional_secrets_are_named_with_their_receivers(tmp_path):
    """Every secret file alertmanager.yml reads is made here, or reported as missing along with
    the receiver that stays inert."""
    output = init_secrets(tmp_path / "secrets", tmp_path / "nothing-provided")
    config = yaml.safe_load((REPO / "alertmanager" / "alertmanager.yml").read_text())
    made = set(contents(tmp_path / "secrets"))
    for receiver in config["receivers"]:
        for integration in [c for key, configs in receiver.items() if key.endswith("_configs")
                            for c in configs]:
            text = yaml.safe_dump(integration)
            for secret in re.findall(r"_file: (/\S+)", text):
                name = Path(secret).name
                assert name in made or (
                    f"{name}: not provided; the {receiver['name']} receiver stays inert" in output
                ), (receiver["name"], name)


@pytest.mark.skipif(not ROOT, reason="giving files to other users needs root")
def test_as_root_each_secret_goes_to_the_user_that_reads_it(tmp_path):
    provided = tmp_path / "provided"
    provided.mkdir()
    (provided / "slack_api_url").write_text("https://hooks.slack.com/services/T/B/X\n")
    (provided / "slack_api_url").chmod(0o600)  # the user's private file, read by root
    init_secrets(tmp_path / "secrets", provided,
                 SECRET_OWNERS="bridge_token=10001:65534 grafana_admin_password=472:0 "
                               "*=65534:65534")
    owners = {path.name: (path.stat().st_uid, path.stat().st_gid)
              for path in (tmp_path / "secrets").iterdir()}
    assert owners == {"bridge_token": (10001, 65534), "grafana_admin_password": (472, 0),
                      "slack_api_url": (65534, 65534)}
