"""Property tests (hypothesis): no input, answer or name makes soul crash, re-POST or escape."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from soulcli.downloads import ImageDownloader
from soulcli.errors import ExitCode
from soulcli.fake302 import Fake302, FakeSettings, make_png
from soulcli.models import Job
from tests.conftest import SENTINEL_KEY, invoke

DOCUMENTED = {int(code) for code in ExitCode} | {141}


def fixtures_ok(max_examples: int = 100) -> settings:
    """Settings for tests that use pytest's per-test tmp_path (fine: each example cleans up)."""
    return settings(
        suppress_health_check=[HealthCheck.function_scoped_fixture],
        deadline=None,
        max_examples=max_examples,
    )


WORDS = st.sampled_from(
    [
        "generate",
        "fetch",
        "batch",
        "styles",
        "history",
        "config",
        "set",
        "get",
        "unset",
        "list",
        "path",
        "show",
        "--json",
        "--style",
        "-s",
        "Tokyo",
        "0.5",
        "--ar",
        "16:9",
        "5:4",
        "--seed",
        "0",
        "42",
        "--quality",
        "high",
        "4k",
        "--out",
        "-o",
        "--dry-run",
        "--no-wait",
        "--wait",
        "--last",
        "--search",
        "-S",
        "-",
        "--",
        "--timeout",
        "-1",
        "--like",
        "--limit",
        "--since",
        "7d",
        "--state",
        "api_key",
        "quality",
        "confirm_above",
        "--max-cost",
        "--concurrency",
        "--version",
        "--yes",
        "--resume",
        "--enhance",
        "--negative",
        "higgsfield_x",
        "../x",
    ]
)
ARGV = st.lists(st.one_of(WORDS, st.text(max_size=12)), max_size=7)


@fixtures_ok(150)
@given(argv=ARGV)
def test_any_argument_list_ends_cleanly(argv: list[str], tmp_path: Path) -> None:
    env: dict[str, str | None] = {
        "SOUL_API_KEY": None,  # no key: nothing can reach a network
        "SOUL_BASE_URL": "http://127.0.0.1:9",
        "HOME": str(tmp_path / "home"),  # --install-completion must not touch a real rc file
        "SHELL": "/bin/bash",
    }
    result = invoke(*argv, stdin=b"", env=env)  # invoke asserts: no traceback, no key, no ESC
    assert result.code in DOCUMENTED, (argv, result.code, result.stderr)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner, max_size=5)
    ),
    max_leaves=15,
)
JOB = st.fixed_dictionaries(
    {},
    optional={
        "status": st.one_of(
            st.sampled_from(["completed", "failed", "nsfw", "queued", "weird"]), JSON
        ),
        "results": st.one_of(
            JSON,
            st.fixed_dictionaries(
                {
                    "raw": st.fixed_dictionaries(
                        {
                            "url": st.one_of(
                                st.text(max_size=30), st.just("https://cdn.example.invalid/x.png")
                            )
                        }
                    )
                }
            ),
        ),
    },
)
TASK_ANSWER = st.one_of(
    JSON,
    st.fixed_dictionaries(
        {"id": st.one_of(st.text(max_size=20), JSON)},
        optional={"status": JSON, "jobs": st.one_of(st.lists(JOB, max_size=6), JSON)},
    ),
)
BODY = st.one_of(TASK_ANSWER.map(lambda v: json.dumps(v).encode()), st.binary(max_size=200))


def _env(fake: Fake302) -> dict[str, str | None]:
    return {
        "SOUL_BASE_URL": fake.base_url,
        "SOUL_API_KEY": fake.settings.api_key,
        "SOUL_POLL_SCALE": "0.05",
    }


def generate_once_against(fake_settings: FakeSettings, out_dir: Path) -> None:
    """One generate against a fake answering oddly: one POST, a documented code, no temp files."""
    with Fake302(fake_settings) as fake:
        result = invoke("generate", "a dog", "--timeout", "0.4", "-o", str(out_dir), env=_env(fake))
        assert fake.post_count() == 1
    assert result.code in DOCUMENTED, result.stderr
    assert list(out_dir.glob(".*")) == [], "temp files left behind"


@fixtures_ok(40)
@given(body=BODY)
def test_any_submit_answer_is_handled_without_a_second_post(body: bytes, tmp_path: Path) -> None:
    generate_once_against(FakeSettings(api_key=SENTINEL_KEY, submit_body=body), tmp_path / "o")


@fixtures_ok(25)
@given(body=BODY)
def test_any_poll_answer_is_handled_without_a_second_post(body: bytes, tmp_path: Path) -> None:
    generate_once_against(FakeSettings(api_key=SENTINEL_KEY, poll_body=body), tmp_path / "o")


HOSTILE = st.one_of(
    st.text(max_size=40),
    st.sampled_from(
        [
            "../../etc/passwd",
            "/etc/passwd",
            "..\\..\\boot.ini",
            "%2e%2e%2fx",
            "a/../../b",
            "\u202e.png",
            "con",
            ".",
            "..",
            "~root",
            "x\x00y",
        ]
    ),
)


@settings(max_examples=150, deadline=None)
@given(task_id=HOSTILE, path=HOSTILE, stem=st.one_of(st.none(), HOSTILE))
def test_no_task_id_or_url_saves_outside_the_output_dir(
    task_id: str, path: str, stem: str | None
) -> None:
    png = make_png(4, 4)
    transport = httpx.MockTransport(lambda request: httpx.Response(200, content=png))
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        out_dir = root / "out"
        url = "https://cdn.example/" + path
        job = Job(1, "completed", raw_url=url)
        with ImageDownloader(transport=transport, sleep=lambda s: None) as downloader:
            saved, _missing = downloader.save_all(task_id, [job], out_dir, stem=stem)
        for image in saved:
            assert image.path.parent == out_dir.resolve()
        outside = [
            p
            for p in root.rglob("*")
            if p.resolve().parent != out_dir.resolve() and p.resolve() != out_dir.resolve()
        ]
        assert outside == []
