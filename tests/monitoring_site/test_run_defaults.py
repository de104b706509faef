"""`make run` is safe by default: DEBUG off, its own secrets kept private, loopback only."""

from __future__ import annotations

import http.cookiejar
import json
import re
import signal
import stat
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from django.utils.crypto import get_random_string

from monitoring_site.launch_defaults import (
    BindAddressError,
    SecretsFileError,
    address_of,
    is_loopback_bind,
    listening_line,
    load_or_create_secrets,
    run_defaults,
    split_bind,
)
from monitoring_site.launcher import command_line_environment
from tests.processes import BASE_DIR, free_port, process_environment, wait_until


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_it_logs_plain_lines_to_a_person_and_json_to_anything_else(tmp_path: Path) -> None:
    secrets_file = tmp_path / "tradewatch.env"

    assert run_defaults({}, secrets_file, terminal=True)[0]["LOG_FORMAT"] == "plain"
    assert "LOG_FORMAT" not in run_defaults({}, secrets_file)[0]
    assert "LOG_FORMAT" not in run_defaults({"LOG_FORMAT": "json"}, secrets_file, terminal=True)[0]


def test_it_turns_debug_off_and_generates_private_secrets(tmp_path: Path) -> None:
    secrets_file = tmp_path / "var" / "secrets" / "tradewatch.env"

    added, notes = run_defaults({}, secrets_file)

    assert added["DEBUG"] == "False"
    assert added["TRADEWATCH_BIND"] == "127.0.0.1:8000"
    assert len(added["SECRET_KEY"]) >= 50
    Fernet(added["TRADEWATCH_ENCRYPTION_KEY"])  # a valid Fernet key
    assert _mode(secrets_file) == 0o600
    assert _mode(secrets_file.parent) == 0o700
    assert f"SECRET_KEY and TRADEWATCH_ENCRYPTION_KEY generated into {secrets_file}" in (
        " ".join(notes)
    )


def test_it_reuses_the_secrets_on_every_later_run(tmp_path: Path) -> None:
    secrets_file = tmp_path / "secrets" / "tradewatch.env"
    first, _ = run_defaults({}, secrets_file)
    content = secrets_file.read_text()

    second, notes = run_defaults({}, secrets_file)

    assert second["SECRET_KEY"] == first["SECRET_KEY"]
    assert second["TRADEWATCH_ENCRYPTION_KEY"] == first["TRADEWATCH_ENCRYPTION_KEY"]
    assert secrets_file.read_text() == content
    assert "read from" in " ".join(notes)


def test_it_never_overrides_the_environment(tmp_path: Path) -> None:
    secrets_file = tmp_path / "secrets" / "tradewatch.env"
    environ = {
        "DEBUG": "True",
        "SECRET_KEY": "mine",
        "TRADEWATCH_ENCRYPTION_KEY": "also-mine",
        "TRADEWATCH_BIND": "0.0.0.0:9000",
        "TRADEWATCH_PUBLIC_URL": "https://tw.example.com",
    }

    added, notes = run_defaults(environ, secrets_file)

    assert added == {}
    assert not secrets_file.exists()  # nothing to generate
    assert "DEBUG is on" in notes[0]


def test_it_fills_in_only_the_missing_secret(tmp_path: Path) -> None:
    secrets_file = tmp_path / "secrets" / "tradewatch.env"

    added, _ = run_defaults({"SECRET_KEY": "mine"}, secrets_file)

    assert "SECRET_KEY" not in added
    assert added["TRADEWATCH_ENCRYPTION_KEY"] in secrets_file.read_text()


def test_it_serves_plain_http_only_on_loopback_without_a_domain(tmp_path: Path) -> None:
    secrets_file = tmp_path / "secrets" / "tradewatch.env"

    local, _ = run_defaults({}, secrets_file)
    behind_proxy, _ = run_defaults({"ALLOWED_HOSTS": "tw.example.com"}, secrets_file)
    public, _ = run_defaults({"TRADEWATCH_BIND": "0.0.0.0:8000"}, secrets_file)
    asked, _ = run_defaults({"SESSION_COOKIE_SECURE": "True"}, secrets_file)

    assert local["SECURE_SSL_REDIRECT"] == local["SESSION_COOKIE_SECURE"] == "False"
    assert local["CSRF_COOKIE_SECURE"] == "False"
    for added in (behind_proxy, public):
        assert not {"SECURE_SSL_REDIRECT", "SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE"} & set(
            added
        )
    assert "SESSION_COOKIE_SECURE" not in asked


@pytest.mark.parametrize(
    ("bind", "public_url", "noted"),
    [
        ("", "http://127.0.0.1:8000", False),
        ("127.0.0.1:8610", "http://127.0.0.1:8610", False),
        ("[::1]:8611", "http://[::1]:8611", False),
        ("0.0.0.0:9000", "http://127.0.0.1:9000", True),
    ],
)
def test_links_in_notifications_follow_the_bind_address(
    tmp_path: Path, bind: str, public_url: str, noted: bool
) -> None:
    environ = {"TRADEWATCH_BIND": bind} if bind else {}

    added, notes = run_defaults(environ, tmp_path / "tradewatch.env")

    assert added["TRADEWATCH_PUBLIC_URL"] == public_url
    assert any("set TRADEWATCH_PUBLIC_URL" in note for note in notes) is noted
    kept, _ = run_defaults(
        {**environ, "TRADEWATCH_PUBLIC_URL": "https://tw.example.com"}, tmp_path / "tradewatch.env"
    )
    assert "TRADEWATCH_PUBLIC_URL" not in kept


def test_the_command_line_uses_what_make_run_chose(tmp_path: Path) -> None:
    secrets_file = tmp_path / "secrets" / "tradewatch.env"

    # Before the first `make run`: no secrets file, and none is made.
    embedded = command_line_environment(
        {"TRADEWATCH_SECRETS_FILE": str(secrets_file)}, probe=lambda host, port: False
    )
    assert embedded["DATABASE_URL"].startswith("sqlite:///")
    assert embedded["DATABASE_URL"].endswith("/var/tradewatch.sqlite3")
    assert embedded["CELERY_BROKER_URL"].startswith("filesystem://")
    assert not secrets_file.exists()

    generated, _ = run_defaults({}, secrets_file)
    given = {"DATABASE_URL": "postgres://x/y", "CELERY_BROKER_URL": "redis://z/1"}
    added = command_line_environment(
        {**given, "SECRET_KEY": "mine", "TRADEWATCH_SECRETS_FILE": str(secrets_file)}
    )
    assert added == {"TRADEWATCH_ENCRYPTION_KEY": generated["TRADEWATCH_ENCRYPTION_KEY"]}


@pytest.mark.slow
def test_manage_py_reads_the_secrets_and_database_make_run_uses(tmp_path: Path) -> None:
    secrets_file = tmp_path / "secrets" / "tradewatch.env"
    generated, _ = run_defaults({}, secrets_file)
    env = process_environment(TRADEWATCH_SECRETS_FILE=str(secrets_file))
    for name in ("DATABASE_URL", "SECRET_KEY", "TRADEWATCH_ENCRYPTION_KEY"):
        env.pop(name, None)
    env.pop("DJANGO_SETTINGS_MODULE", None)
    code = (
        "from django.conf import settings; import json; print(json.dumps(["
        "settings.SECRET_KEY, settings.TRADEWATCH_ENCRYPTION_KEYS, "
        "settings.DATABASES['default']['NAME']]))"
    )
    done = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", code],
        env=env, cwd=BASE_DIR, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    secret_key, encryption_keys, database = json.loads(done.stdout.strip().splitlines()[-1])
    assert secret_key == generated["SECRET_KEY"]
    assert encryption_keys == [generated["TRADEWATCH_ENCRYPTION_KEY"]]
    # PostgreSQL answers on 127.0.0.1:5432 here: its `tradewatch` database, as `make run`.
    assert database == "tradewatch"


def test_it_never_replaces_a_damaged_secrets_file(tmp_path: Path) -> None:
    secrets_file = tmp_path / "secrets" / "tradewatch.env"
    secrets_file.parent.mkdir(mode=0o700)
    secrets_file.write_text("SECRET_KEY=kept\n")
    secrets_file.chmod(0o600)

    with pytest.raises(SecretsFileError, match="lacks TRADEWATCH_ENCRYPTION_KEY"):
        run_defaults({}, secrets_file)
    assert secrets_file.read_text() == "SECRET_KEY=kept\n"


def test_it_makes_a_secrets_file_readable_by_others_private_again(tmp_path: Path) -> None:
    secrets_file = tmp_path / "secrets" / "tradewatch.env"
    values, _ = load_or_create_secrets(secrets_file)
    secrets_file.chmod(0o644)
    secrets_file.parent.chmod(0o755)

    again, created = load_or_create_secrets(secrets_file)

    assert (again, created) == (values, False)
    assert _mode(secrets_file) == 0o600
    assert _mode(secrets_file.parent) == 0o700


@pytest.mark.parametrize(
    ("bind", "loopback"),
    [
        ("127.0.0.1:8000", True),
        ("localhost:8000", True),
        ("[::1]:8000", True),
        ("unix:/run/tw.sock", True),
        ("0.0.0.0:8000", False),
        ("[::]:8000", False),
        ("10.0.0.5:8000", False),
        ("tw.example.com:8000", False),
    ],
)
def test_it_tells_a_loopback_bind_address(bind: str, loopback: bool) -> None:
    assert is_loopback_bind(bind) is loopback


def test_it_prints_the_address_an_operator_opens() -> None:
    assert address_of("127.0.0.1:8123") == "http://127.0.0.1:8123"
    assert address_of("0.0.0.0:8000") == "http://127.0.0.1:8000"
    assert address_of("[::]:8000") == "http://[::1]:8000"
    assert address_of("::1:8000") == "http://[::1]:8000"
    assert address_of("tw.example.com:8443") == "http://tw.example.com:8443"


@pytest.mark.parametrize(
    ("bind", "line"),
    [
        ("127.0.0.1:8123", "Tradewatch runs at http://127.0.0.1:8123/admin/"),
        ("10.0.0.5:8000", "Tradewatch runs at http://10.0.0.5:8000/admin/"),
        (
            "0.0.0.0:8000",
            "Tradewatch listens on 0.0.0.0:8000 (every IPv4 address of this machine): open "
            "http://127.0.0.1:8000/admin/ here, or port 8000 of this machine's name or "
            "address from elsewhere",
        ),
        (
            "[::]:9000",
            "Tradewatch listens on [::]:9000 (every address of this machine): open "
            "http://[::1]:9000/admin/ here, or port 9000 of this machine's name or address "
            "from elsewhere",
        ),
    ],
)
def test_it_says_where_it_listens_and_what_to_open(bind: str, line: str) -> None:
    assert listening_line(bind) == line


@pytest.mark.parametrize("bind", ["8000", "0.0.0.0", "localhost:http", "127.0.0.1:0", "::"])
def test_it_refuses_a_bind_address_without_a_port(bind: str) -> None:
    with pytest.raises(
        BindAddressError, match=f"TRADEWATCH_BIND must be HOST:PORT .* not {bind!r}"
    ):
        split_bind(bind)


def test_make_run_stops_at_once_on_a_bind_address_it_cannot_serve(tmp_path: Path) -> None:
    env = process_environment(
        TRADEWATCH_BIND="8000", TRADEWATCH_SECRETS_FILE=str(tmp_path / "tradewatch.env")
    )

    result = subprocess.run(
        [sys.executable, "-m", "monitoring_site.launcher"],
        env=env, cwd=BASE_DIR, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip

    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "TRADEWATCH_BIND must be HOST:PORT with a port from 1 to 65535 (127.0.0.1:8000, "
        "0.0.0.0:8000 for every IPv4 address, [::]:8000 for every address), not '8000'."
    ]
    # Refused before anything ran: no migration, no process started.
    assert "Operations to perform" not in result.stdout
    assert "started web" not in result.stdout


def test_its_secrets_pass_check_deploy_behind_a_proxy(tmp_path: Path) -> None:
    environ = {
        "ALLOWED_HOSTS": "tradewatch.example.com",
        "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/tradewatch",
        "CELERY_BROKER_URL": "redis://127.0.0.1:6379/0",
        "DJANGO_SETTINGS_MODULE": "monitoring_site.settings",
        "PATH": "/usr/bin:/bin",
    }
    added, _ = run_defaults(environ, tmp_path / "secrets" / "tradewatch.env")

    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        env={**environ, **added}, cwd=BASE_DIR, capture_output=True, text=True, timeout=120,
        check=False,
    )  # fmt: skip

    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues (0 silenced)." in result.stdout


# --- The real `make run` ---------------------------------------------------------------


def _get(opener: urllib.request.OpenerDirector, url: str) -> tuple[int, str, str]:
    try:
        with opener.open(url, timeout=5) as response:
            body = response.read().decode()
            return response.status, response.headers["Content-Type"], body
    except urllib.error.HTTPError as error:
        return error.code, error.headers["Content-Type"], error.read().decode()
    except OSError:  # not listening yet, or gone
        return 0, "", ""


@pytest.mark.slow
def test_make_run_is_safe_by_default_and_its_admin_works(
    transactional_db: None, tmp_path: Path
) -> None:
    port = free_port()
    secrets_file = tmp_path / "var" / "secrets" / "tradewatch.env"
    password = get_random_string(20)
    env = process_environment(
        HOME=str(tmp_path),
        STATIC_ROOT=str(tmp_path / "static"),
        PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "prometheus"),
        TRADEWATCH_SECRETS_FILE=str(secrets_file),
        # No DEBUG, SECRET_KEY, TRADEWATCH_ENCRYPTION_KEY: what `make run` starts without.
        TRADEWATCH_BIND=f"127.0.0.1:{port}",
        TRADEWATCH_ADMIN_PASSWORD=password,
        WEB_CONCURRENCY="1",
    )
    for name in ("DEBUG", "SECRET_KEY", "TRADEWATCH_ENCRYPTION_KEY", "ALLOWED_HOSTS"):
        env.pop(name, None)
    log = tmp_path / "launcher.log"
    with log.open("wb") as out:
        launcher = subprocess.Popen(
            [sys.executable, "-m", "monitoring_site.launcher"],
            env=env, cwd=BASE_DIR, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    opener = urllib.request.build_opener(
        urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
    )
    try:
        assert wait_until(lambda: _get(opener, f"{base}/healthz")[0] == 200, 120), log.read_text()
        assert f"Tradewatch runs at {base}/admin/" in log.read_text()

        # No debug page: a JSON 404 that lists no URL pattern.
        status, content_type, body = _get(opener, f"{base}/api/v1/alerts/null")
        assert (status, content_type) == (404, "application/json")
        assert "No API endpoint" in json.loads(body)["errors"][0]["message"]
        assert "URLconf" not in body
        # Nor for an exception outside the versioned API: no traceback, no settings.
        status, content_type, body = _get(opener, f"{base}/api/schema/nothing-here")
        assert (status, content_type) == (404, "application/json")
        assert "Traceback" not in body
        assert "URLconf" not in body

        # The admin at the printed address: its page, its static files, a sign-in.
        status, _, page = _get(opener, f"{base}/admin/login/?next=/admin/")
        assert status == 200, page
        stylesheets = re.findall(r'href="(/static/[^"]+\.css)"', page)
        assert stylesheets
        for href in stylesheets:
            assert _get(opener, base + href)[0] == 200, href
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
        assert token
        form = urllib.parse.urlencode(
            {
                "csrfmiddlewaretoken": token.group(1),
                "username": "admin",
                "password": password,
                "next": "/admin/",
            }
        ).encode()
        with opener.open(f"{base}/admin/login/?next=/admin/", data=form, timeout=10) as signed_in:
            assert signed_in.status == 200
            assert signed_in.url == f"{base}/admin/"
            assert "Log out" in signed_in.read().decode()
    finally:
        launcher.send_signal(signal.SIGINT)
        code = launcher.wait(timeout=60)
    text = log.read_text()
    assert code == 0, text
    assert "DEBUG is off" in text
    values = secrets_file.read_text()
    secret_key = re.search(r"^SECRET_KEY=(.+)$", values, re.MULTILINE)
    assert secret_key
    assert secret_key.group(1) not in text  # never printed
    assert stat.S_IMODE(secrets_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(secrets_file.parent.stat().st_mode) == 0o700


def test_it_leaves_a_shared_folder_such_as_tmp_as_it_is(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)  # sticky and writable by all, as /tmp is

    run_defaults({}, shared / "tradewatch.env")

    assert _mode(shared) == 0o1777
    assert _mode(shared / "tradewatch.env") == 0o600
