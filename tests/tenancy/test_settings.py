"""Settings: the embedded default needs no environment; production refuses to guess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PRINT = (
    "import django; from django.conf import settings as s; "
    "print(s.DATABASES['default']['ENGINE'], s.DRAMATIQ_BROKER['BROKER'], bool(s.SECRET_KEY))"
)


def run_settings(tmp_path, **env):
    clean = {
        k: v
        for k, v in os.environ.items()
        if k
        not in {"DATABASE_URL", "DRAMATIQ_BROKER_URL", "SECRET_KEY", "DEBUG", "ENCRYPTION_KEYS"}
    }
    clean.update(
        {"DJANGO_SETTINGS_MODULE": "osmos.settings", "OSMOS_VAR_DIR": str(tmp_path)}, **env
    )
    return subprocess.run(
        [sys.executable, "-c", PRINT],
        cwd=ROOT,
        env=clean,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_no_environment_gives_sqlite_and_in_process_broker(tmp_path):
    result = run_settings(tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [
        "django.db.backends.sqlite3",
        "dramatiq.brokers.stub.StubBroker",
        "True",
    ]
    assert (tmp_path / "secret_key").exists()
    assert (tmp_path / "encryption_key").exists()


def test_generated_secret_key_is_kept_between_starts(tmp_path):
    run_settings(tmp_path)
    first = (tmp_path / "secret_key").read_text()
    run_settings(tmp_path)
    assert (tmp_path / "secret_key").read_text() == first


def test_environment_selects_postgres_and_redis(tmp_path):
    result = run_settings(
        tmp_path,
        DATABASE_URL="postgres://u@db.example:5432/osmos",
        DRAMATIQ_BROKER_URL="redis://127.0.0.1:6379/3",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[:2] == [
        "django.db.backends.postgresql",
        "dramatiq.brokers.redis.RedisBroker",
    ]


def test_production_mode_without_secret_key_refuses_to_start(tmp_path):
    result = run_settings(tmp_path, DEBUG="false")
    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr


def test_malformed_boolean_is_an_error_not_false(tmp_path):
    result = run_settings(tmp_path, DEBUG="ture")
    assert result.returncode != 0
    assert "DEBUG='ture' is not a boolean" in result.stderr


def test_unknown_broker_scheme_is_refused(tmp_path):
    result = run_settings(tmp_path, DRAMATIQ_BROKER_URL="kafka://x")
    assert result.returncode != 0
    assert "DRAMATIQ_BROKER_URL" in result.stderr


def test_production_settings_pass_check_deploy(tmp_path):
    from cryptography.fernet import Fernet

    clean = {
        k: v
        for k, v in os.environ.items()
        if k not in {"DATABASE_URL", "DRAMATIQ_BROKER_URL", "SECRET_KEY", "DEBUG"}
    }
    clean.update(
        DJANGO_SETTINGS_MODULE="osmos.settings",
        OSMOS_VAR_DIR=str(tmp_path),
        DEBUG="false",
        SECRET_KEY="k" * 20 + "-production-secret-key-0123456789-abcdefghijkl",
        ENCRYPTION_KEYS=Fernet.generate_key().decode(),
        ALLOWED_HOSTS="osmos.example.com",
    )
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=clean,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout
