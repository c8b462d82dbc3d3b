"""`soul doctor`: check config, data dir, key, API host and key acceptance without spending."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from soulcli.commands import new_app
from soulcli.errors import ConfigError, ExitCode, SoulError
from soulcli.options import JsonFlag

# Well-formed but never issued: looking it up creates nothing and costs nothing.
PROBE_TASK_ID = "higgsfield_000000000000"
# A key no account holds. The host must refuse it, or a 404 for the real key would
# prove nothing (a web page at a wrong base_url answers 404 to every key).
MADE_UP_KEY = "sk-souldoctor" + "0" * 38

OK, FAIL, WARN, SKIP = "ok", "fail", "warn", "skip"
MARKS = {OK: "ok", FAIL: "FAIL", WARN: "warn", SKIP: "skip"}
INDENT = " " * 6  # under the text of a check line, past its mark


@dataclass(frozen=True)
class Check:
    """One check's verdict: a line for a person, and the exit code a failure maps to."""

    name: str  # stable snake_case id, as in --json
    status: str  # OK, FAIL, WARN or SKIP
    detail: str  # one line, starting with what was checked
    fix: str | None = None  # what to do about a failure or a warning
    exit_code: ExitCode = ExitCode.OK

    def as_json(self) -> dict[str, Any]:
        # A skipped or warned check is not itself a problem: only FAIL is "not ok".
        return {
            "name": self.name,
            "status": self.status,
            "ok": self.status != FAIL,
            "detail": self.detail,
            "fix": self.fix,
        }


def _ok(name: str, detail: str) -> Check:
    return Check(name, OK, detail)


def _skip(name: str, detail: str) -> Check:
    return Check(name, SKIP, detail)


def _fail(name: str, detail: str, fix: str | None, exit_code: ExitCode) -> Check:
    return Check(name, FAIL, detail, fix, exit_code)


def doctor(json_: JsonFlag = False) -> None:
    """Check the config, the API key and the API host, without spending anything.

    \b
    Examples:
      soul doctor
      soul doctor --json

    Prints one line per check: ok, FAIL with a fix under it, warn, or skip when an
    earlier check it needs failed. The API is asked only GET questions about a
    made-up task: doctor never submits, so it never creates a task or costs PTC.

    \b
    Exit codes (the first FAIL decides; warn and skip do not count):
      0  all is well
      3  CONFIG: no API key, a bad value, an unusable config file or data dir
      4  AUTH: the API refused the key (401)
      5  BALANCE: the key is known but the account cannot pay (402/403)
      8  UNREACHABLE: no connection to the API host
      9  SERVER: the host answered with an error (5xx, redirect) or not at all
    """
    from soulcli import ui
    from soulcli.text import one_line

    checkup = Checkup()
    checks: list[Check] = []
    for check in checkup.run():
        checks.append(check)
        if not json_:  # line by line, so a slow host check shows what came before it
            ui.emit_wrapped(f"{MARKS[check.status]:<6}{one_line(check.detail, 1000)}", INDENT)
            if check.fix and check.status in (FAIL, WARN):
                ui.emit_wrapped(f"{INDENT}fix: {one_line(check.fix, 1000)}", INDENT)
    failures = [check for check in checks if check.status == FAIL]
    if json_:
        ui.emit_json(
            {
                "ok": not failures,
                "exit_code": int(failures[0].exit_code if failures else ExitCode.OK),
                "config_file": str(checkup.config_file),
                "data_dir": str(checkup.data_dir),
                "settings": checkup.settings,
                "checks": [check.as_json() for check in checks],
            }
        )
    if failures:
        first = failures[0]
        more = f"; {len(failures) - 1} more problem(s) listed" if len(failures) > 1 else ""
        # The one error line every soul failure ends with, naming the first problem.
        raise SoulError(f"{first.detail}{more}", hint=first.fix, exit_code=first.exit_code)


class Checkup:
    """The checks in order; later ones are skipped when what they need has failed."""

    def __init__(self) -> None:
        from soulcli.paths import config_path, data_dir

        self.config_file = config_path()
        self.data_dir = data_dir()
        # Each setting's shown value (the key masked) and source, as `config list --json`
        # prints them; None when the config file could not be read.
        self.settings: dict[str, dict[str, str | None]] | None = None

    def run(self) -> Iterator[Check]:
        from soulcli.config import KNOWN_KEYS, check_base_url, value_and_source

        values, check = self._config_file()
        yield check
        yield self._data_dir()
        if values is None:
            # Every command reads this file first and would stop here: so does doctor.
            yield _skip("settings", "settings not read (the config file cannot be used)")
            yield _skip("api_host", "API host not asked (the config file cannot be used)")
            yield _skip("key_accepted", "key not tried (the config file cannot be used)")
            return
        rows = {name: value_and_source(name, values) for name in KNOWN_KEYS}
        self.settings = {
            name: {"value": _shown(name, value), "source": source}
            for name, (value, source) in rows.items()
        }
        usable = True
        for name, (value, source) in rows.items():
            check = _setting(name, value, source)
            usable = usable and not (name in ("api_key", "base_url") and check.status == FAIL)
            yield check
        api_key, key_source = rows["api_key"]
        if not usable or api_key is None:
            # No request at all without a key that may be sent to a host that may get it.
            yield _skip("api_host", "API host not asked (needs a usable api_key and base_url)")
            yield _skip("key_accepted", "key not tried (needs a usable api_key and base_url)")
            return
        base_url = check_base_url(rows["base_url"][0] or "")
        yield from _api_checks(base_url, api_key, key_source)

    def _config_file(self) -> tuple[dict[str, str] | None, Check]:
        """Read the file as every command does; on success also report its mode."""
        import stat

        from soulcli.config import load_config

        path = self.config_file
        try:
            values = load_config(path)  # refuses symlinks, bad TOML, a readable key file
        except ConfigError as exc:
            return None, _fail("config_file", exc.message, exc.hint, exc.exit_code)
        try:
            mode = stat.S_IMODE(path.lstat().st_mode)
        except OSError:  # load_config found no file (or it went away since)
            return values, _ok(
                "config_file",
                f"config file {path}: none yet (settings come from defaults and the environment)",
            )
        note = "" if "api_key" in values or not mode & 0o077 else "; it holds no key"
        return values, _ok("config_file", f"config file {path} (mode {mode:04o}{note})")

    def _data_dir(self) -> Check:
        """Whether the task ledger can be written where soul will put it."""
        import os
        import tempfile

        from soulcli.paths import ledger_path

        path = self.data_dir
        fix = "make it writable, or point SOUL_DATA_DIR at a directory you can write"

        def fail(detail: str) -> Check:
            # CONFIG: the code the ledger itself exits with when it cannot be opened.
            return _fail("data_dir", detail, fix, ExitCode.CONFIG)

        if path.is_dir():
            try:
                # A real write (an unnamed file, gone when closed): os.access is blind to
                # read-only mounts and says yes to root.
                with tempfile.TemporaryFile(dir=path):
                    pass
            except OSError as exc:
                return fail(f"data dir {path} is not writable ({exc.strerror})")
            ledger = ledger_path()
            if not os.path.lexists(ledger):
                return _ok("data_dir", f"data dir {path} (writable; no task ledger yet)")
            if not ledger.is_file() or not os.access(ledger, os.R_OK | os.W_OK):
                return fail(f"task ledger {ledger} is not a file soul can read and write")
            return _ok("data_dir", f"data dir {path} (writable, task ledger {ledger.name})")
        if os.path.lexists(path):  # a file, or a link to nowhere
            return fail(f"data dir {path} is not a directory")
        # Not there yet: soul creates it on first use if the nearest existing parent lets it.
        parent = path.parent
        while not os.path.lexists(parent) and parent != parent.parent:
            parent = parent.parent
        if not parent.is_dir():
            return fail(f"data dir {path} cannot be created: {parent} is not a directory")
        if not os.access(parent, os.W_OK | os.X_OK):
            return fail(f"data dir {path} cannot be created: {parent} is not writable")
        return _ok("data_dir", f"data dir {path}: none yet (created on first use)")


def _shown(name: str, value: str | None) -> str | None:
    from soulcli.config import SECRET_KEYS, mask_secret

    if value is None:
        return None
    return mask_secret(value) if name in SECRET_KEYS else value


def _setting(name: str, value: str | None, source: str) -> Check:
    """A setting's value in force and its source, checked as `soul config set` checks it."""
    problem = _setting_problem(name, value)
    if value is None:
        if problem is not None:  # only the key is required
            return _fail(name, f"{name} not set", problem.hint, problem.exit_code)
        from soulcli.config import UNSET_MEANING

        return _ok(name, f"{name} none [not set: {UNSET_MEANING[name]}]")
    text = f"{name} {_shown(name, value)} [{source}]"
    if problem is None:
        return _ok(name, text)
    env = source.removeprefix("env ") if source.startswith("env ") else None
    where = f"fix or unset {env}" if env else f"soul config set {name} VALUE"
    fix = f"{where}; {problem.hint}" if problem.hint else where
    return _fail(name, f"{text}: {problem.message}", fix, problem.exit_code)


def _setting_problem(name: str, value: str | None) -> SoulError | None:
    from soulcli.config import DEFAULT_BASE_URL, Settings, check_base_url, require_api_key

    try:
        if name == "api_key":
            require_api_key(
                Settings(
                    api_key=value,
                    base_url=DEFAULT_BASE_URL,
                    style=None,
                    aspect_ratio=None,
                    quality=None,
                    out_dir=None,
                )
            )
        elif value is not None and name == "base_url":
            check_base_url(value)
        elif value is not None and name in ("style", "aspect_ratio", "quality", "confirm_above"):
            from soulcli.commands.config_cmd import validate_value

            validate_value(name, value)
    except SoulError as exc:
        # A bad value in a file or the environment is a config problem, whatever
        # `soul config set` would call the same text typed on its command line.
        return ConfigError(exc.message, hint=exc.hint)
    return None


def _api_checks(base_url: str, api_key: str, key_source: str) -> Iterator[Check]:
    """Ask the API host about a made-up task: does it answer, and does it take the key?"""
    import time

    from soulcli.client import ApiClient, server_message
    from soulcli.models import fetch_path

    asked = f"GET {fetch_path(PROBE_TASK_ID)}"
    with ApiClient(base_url, api_key) as client:
        started = time.monotonic()
        try:
            answer = client.probe(PROBE_TASK_ID)
        except SoulError as exc:
            yield _fail(
                "api_host",
                f"API host: {exc.message}",
                "check the network, and base_url: soul config get base_url",
                exc.exit_code,  # UNREACHABLE without a connection, SERVER without an answer
            )
            yield _skip("key_accepted", "key not tried (the API host did not answer)")
            return
        ms = round((time.monotonic() - started) * 1000)
    status = answer.status
    said = f"{asked}: {status} in {ms} ms"
    if status >= 500 or 300 <= status < 400:
        detail = f"API host {base_url} answers with an error ({said}: {server_message(answer)})"
        fix = (
            "the service is in trouble: try again later"
            if status >= 500
            else "check base_url, the API does not redirect: soul config get base_url"
        )
        yield _fail("api_host", detail, fix, ExitCode.SERVER)
        yield _skip("key_accepted", "key not tried (the API host answered with an error)")
        return
    yield _ok("api_host", f"API host {base_url} answers ({said})")
    if status == 401:
        fix = (
            f"{key_source.removeprefix('env ')} overrides the config file and holds "
            "this refused key: fix it or unset it"
            if key_source.startswith("env ")
            else "set the right key: soul config set api_key"
        )
        detail = f"key refused by the API (401: {server_message(answer)})"
        yield _fail("key_accepted", detail, fix, ExitCode.AUTH)
    elif status in (402, 403):
        detail = (
            f"key known, but the account cannot pay or is not allowed "
            f"({status}: {server_message(answer)})"
        )
        yield _fail("key_accepted", detail, "top up your 302.AI balance", ExitCode.BALANCE)
    elif status == 429:
        yield _fail(
            "key_accepted",
            "key not confirmed: the API is rate limiting (429)",
            "wait a minute, then run soul doctor again",
            ExitCode.SERVER,  # what any command exits with when 429s do not stop
        )
    else:
        yield _control_check(base_url)


def _control_check(base_url: str) -> Check:
    """The real key got past the door; make sure a made-up key does not (a 401)."""
    from soulcli.client import ApiClient

    fix = "check that base_url is the 302.AI API: soul config get base_url"
    try:
        with ApiClient(base_url, MADE_UP_KEY) as client:
            status = client.probe(PROBE_TASK_ID).status
    except SoulError as exc:
        return Check("key_accepted", WARN, f"key not confirmed: {exc.message}", fix)
    if status == 401:
        return _ok("key_accepted", "key accepted (a made-up key is refused with 401)")
    # Not a FAIL: the service's real answers to a bad key are not documented.
    return Check(
        "key_accepted",
        WARN,
        f"key not confirmed: the host answers {status} to a made-up key too, "
        "so its answer says nothing about yours",
        fix,
    )


app = new_app()
app.command()(doctor)
