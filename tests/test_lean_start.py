"""What each command imports and builds on its way: the installed `soul`, as a user runs it.

PYTHONPROFILEIMPORTTIME makes Python list every module it imports on stderr; how fast
that is, is measured in benchmarks/run.py (`--only netstart`), not here.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from soulcli.fake302 import Fake302
from tests.conftest import SOUL, run_soul, soul_env

ALWAYS_OUT = ("secrets", "tomllib")


def imported(*args: str, env: dict[str, str]) -> set[str]:
    """The modules `soul ARGS` imports (it must succeed)."""
    done = subprocess.run(
        [str(SOUL), *args],
        env={**env, "PYTHONPROFILEIMPORTTIME": "1"},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return set(re.findall(r"^import time:.*\|\s*(\S+)$", done.stderr, flags=re.M))


def without_soul_dirs(env: dict[str, str]) -> dict[str, str]:
    """The environment with the platform's directories (XDG here, set by the fixtures)
    in place of SOUL_CONFIG_DIR, SOUL_DATA_DIR and SOUL_CACHE_DIR."""
    return {
        k: v
        for k, v in env.items()
        if k not in ("SOUL_CONFIG_DIR", "SOUL_DATA_DIR", "SOUL_CACHE_DIR")
    }


@pytest.mark.parametrize("args", [["--help"], ["styles", "--search", "y2k"]])
def test_light_commands_import_no_config_or_network_module(args: list[str]) -> None:
    modules = imported(*args, env=without_soul_dirs(soul_env(None)))
    assert modules & {*ALWAYS_OUT, "platformdirs", "httpx", "sqlite3"} == set()


def test_a_dry_run_reads_no_config_file_it_does_not_have() -> None:
    env = without_soul_dirs(soul_env(None))
    modules = imported("generate", "a dog", "--dry-run", env=env)
    assert "platformdirs" in modules  # it looks for the config file where the platform keeps it
    assert modules & {*ALWAYS_OUT, "httpx"} == set()


def test_a_config_file_is_parsed_when_there_is_one(isolated_dirs: Path) -> None:
    assert run_soul("config", "set", "quality", "1080p").code == 0
    assert "tomllib" in imported("generate", "a dog", "--dry-run", env=soul_env(None))


def test_no_wait_imports_the_api_client_only(fake: Fake302) -> None:
    modules = imported("generate", "a dog", "--no-wait", env=soul_env(fake))
    assert {"httpx", "soulcli.client", "sqlite3"} <= modules
    # Not httpx's own command line (which would bring Rich and Pygments), nor the image
    # client, nor httpcore (soul's transport is http.client's). (The halted import of
    # httpx._main is listed, taking no time.)
    assert modules & {*ALWAYS_OUT, "soulcli.downloads", "rich", "pygments"} == set()
    assert modules & {"httpcore", "h11", "anyio"} == set()


def test_fetch_last_of_images_on_disk_uses_no_network(fake: Fake302, out_dir: Path) -> None:
    assert run_soul("generate", "a dog", "-o", str(out_dir), fake=fake).code == 0
    modules = imported("fetch", "--last", env=soul_env(fake))
    assert modules & {"httpx", "httpcore", "ssl", "soulcli.client", "soulcli.downloads"} == set()
    assert modules & set(ALWAYS_OUT) == set()


# Runs soul's own entry point in a Python that counts the TLS contexts made and the CA
# bundles read into them (on stderr, last line).
COUNTING = """
import ssl, sys
made, reads = [], []
new, load = ssl.SSLContext.__new__, ssl.SSLContext.load_verify_locations
def counting_new(cls, *args, **kwargs):
    made.append(1)
    return new(cls, *args, **kwargs)
def counting_load(self, *args, **kwargs):
    reads.append(1)
    return load(self, *args, **kwargs)
ssl.SSLContext.__new__ = counting_new
ssl.SSLContext.load_verify_locations = counting_load
def counted_exit(code):  # soul leaves through os._exit: report first
    print("TLS", code, len(made), len(reads), file=sys.stderr, flush=True)
    leave(code)
import os
leave, os._exit = os._exit, counted_exit
sys.argv = ["soul", *sys.argv[1:]]
from soulcli.launch import main
main()
"""


def tls_work(*args: str, env: dict[str, str]) -> tuple[int, int]:
    """(TLS contexts made, CA bundles read) by `soul ARGS`, which must succeed."""
    done = subprocess.run(
        [sys.executable, "-c", COUNTING, *args],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )
    code, made, reads = done.stderr.strip().splitlines()[-1].split()[1:]
    assert code == "0", done.stderr[-2000:]
    return int(made), int(reads)


def test_one_tls_context_per_process(fake: Fake302, out_dir: Path) -> None:
    env = soul_env(fake)
    # Plain http to this machine: a context that is never used, and no CA bundle read.
    assert tls_work("generate", "a dog", "--no-wait", env=env) == (1, 0)
    # The API client and the image client share one context; the bundle is read once
    # (the images may come from an https host, and follow redirects).
    assert tls_work("generate", "a dog", "-o", str(out_dir), env=env) == (1, 1)


def test_the_shared_context_checks_certificates_from_the_start() -> None:
    probe = (
        "import ssl\n"
        "from soulcli.tls import tls_context\n"
        "bare = tls_context(for_tls=False)\n"
        "assert bare.verify_mode == ssl.CERT_REQUIRED and bare.check_hostname\n"
        "assert bare.cert_store_stats()['x509_ca'] == 0  # trusts nobody yet\n"
        "assert tls_context() is bare and tls_context(for_tls=False) is bare\n"
        "assert bare.cert_store_stats()['x509_ca'] > 0\n"
        "print('ok')\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("SSL_CERT_FILE", "SSL_CERT_DIR")}
    done = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.stdout.strip() == "ok", done.stderr
