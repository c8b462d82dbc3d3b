"""`soul generate` end to end: the installed CLI against the fake 302.AI on loopback."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from soulcli.catalog import resolve_style
from soulcli.fake302 import Fake302
from tests.conftest import SENTINEL_KEY, run_soul, soul_env


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and data.endswith(b"IEND\xaeB`\x82")
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def posted_bodies(fake: Fake302) -> list[dict[str, object]]:
    return [json.loads(r.body) for r in fake.requests("POST")]


def test_generate_saves_four_images_and_prints_their_paths(fake: Fake302, out_dir: Path) -> None:
    result = run_soul(
        "generate", "a dog", "--style", "Tokyo", "--ar", "16:9", "-o", str(out_dir), fake=fake
    )
    assert result.code == 0, result.stderr
    paths = [Path(line) for line in result.lines]
    assert len(paths) == 4
    assert all(p.is_absolute() and p.parent == out_dir.resolve() for p in paths)
    # Each image has its NAME.json sidecar beside it, and nothing else is left there.
    expected = {p.name for p in paths} | {p.with_suffix(".json").name for p in paths}
    assert {p.name for p in out_dir.iterdir()} == expected
    assert {png_size(p) for p in paths} == {(1536, 864)}
    body = posted_bodies(fake)[0]
    assert fake.post_count() == 1
    assert body["style_id"] == resolve_style("Tokyo streetstyle").id
    assert body["aspect_ratio"] == "16:9" and body["quality"] == "720p"
    assert body["prompt"] == "a dog" and body["negative_prompt"] == ""
    assert isinstance(body["seed"], int) and 1 <= body["seed"] <= 1_000_000
    assert f"seed {body['seed']}" in result.stderr  # a random seed is reported
    task_id = fake.requests("GET")[0].path.split("/")[3]
    assert task_id in result.stderr
    assert "0.1 PTC" in result.stderr


def test_json_output_has_the_documented_fields(fake: Fake302, out_dir: Path) -> None:
    result = run_soul(
        "generate",
        "a cat",
        "-q",
        "high",
        "--seed",
        "42",
        "--negative",
        "blurry",
        "--enhance",
        "--json",
        "-o",
        str(out_dir),
        fake=fake,
    )
    assert result.code == 0, result.stderr
    payload = json.loads(result.stdout)
    assert payload["status"] == "completed"
    assert payload["task_id"].startswith("higgsfield_")
    assert payload["prompt"] == "a cat" and payload["negative_prompt"] == "blurry"
    assert payload["style"] == {"id": resolve_style("GENERAL").id, "name": "GENERAL"}
    assert payload["aspect_ratio"] == "1:1" and payload["quality"] == "1080p"
    assert payload["seed"] == 42 and payload["enhance_prompt"] is True
    assert payload["cost_ptc"] == 0.2
    assert len(payload["images"]) == 4
    for image in payload["images"]:
        assert Path(image["path"]).is_file() and image["url"].endswith("/raw.png")
    body = posted_bodies(fake)[0]
    assert body == {
        "quality": "1080p",
        "aspect_ratio": "1:1",
        "prompt": "a cat",
        "enhance_prompt": True,
        "seed": 42,
        "style_id": payload["style"]["id"],
        "negative_prompt": "blurry",
    }


def test_prompt_dash_reads_stdin(fake: Fake302, out_dir: Path) -> None:
    result = run_soul(
        "generate", "-", "-o", str(out_dir), fake=fake, stdin="a lighthouse at dusk\n"
    )
    assert result.code == 0, result.stderr
    assert posted_bodies(fake)[0]["prompt"] == "a lighthouse at dusk"


def test_a_piped_prompt_is_read_when_no_prompt_is_given(fake: Fake302, out_dir: Path) -> None:
    result = run_soul("generate", "-o", str(out_dir), fake=fake, stdin="a cat on a piano\n")
    assert result.code == 0, result.stderr
    assert posted_bodies(fake)[0]["prompt"] == "a cat on a piano"
    assert len(result.lines) == 4


def test_name_saves_stem_1_to_stem_4(fake: Fake302, out_dir: Path) -> None:
    result = run_soul("generate", "a dog", "--name", "dog-v1", "-o", str(out_dir), fake=fake)
    assert result.code == 0, result.stderr
    assert [Path(line).name for line in result.lines] == [f"dog-v1_{i}.png" for i in range(1, 5)]
    assert all(Path(line).is_file() for line in result.lines)
    task_id = next(iter(fake.state.tasks))
    assert not list(out_dir.glob(f"{task_id}*"))  # no file is named after the task id


@pytest.mark.parametrize("stem", ["../up", "a/b", ".hidden", ""])
def test_name_that_is_not_a_plain_file_name_is_refused_before_sending(
    fake: Fake302, stem: str
) -> None:
    result = run_soul("generate", "a dog", "--name", stem, fake=fake)
    assert result.code == 2 and "--name" in result.stderr
    assert fake.requests() == []


@pytest.mark.parametrize("shape", ["id", "code", "task_id"])
def test_both_documented_submit_answers_are_understood(
    fake: Fake302, out_dir: Path, shape: str
) -> None:
    fake.settings.response_shape = shape
    result = run_soul("generate", "a dog", "-o", str(out_dir), fake=fake)
    assert result.code == 0, result.stderr
    assert len(result.lines) == 4


def test_partial_task_saves_what_completed_and_names_the_rest(fake: Fake302, out_dir: Path) -> None:
    fake.settings.outcomes = ["completed", "completed", "completed", "nsfw"]
    result = run_soul("generate", "a dog", "-o", str(out_dir), fake=fake)
    assert result.code == 12
    assert len(result.lines) == 3 and len(list(out_dir.glob("*.png"))) == 3
    assert "image 4" in result.stderr and "nsfw" in result.stderr


def test_task_with_no_image_exits_task_failed(fake: Fake302, out_dir: Path) -> None:
    fake.settings.outcomes = ["failed", "nsfw", "failed", "canceled"]
    result = run_soul("generate", "a dog", "-o", str(out_dir), fake=fake)
    assert result.code == 13
    assert result.stdout == ""
    assert list(out_dir.iterdir()) == []
    assert "failed" in result.stderr and "nsfw" in result.stderr


def test_no_wait_prints_the_task_id_and_does_not_poll(fake: Fake302, out_dir: Path) -> None:
    result = run_soul("generate", "a dog", "--no-wait", fake=fake)
    assert result.code == 0
    task_id = result.stdout.strip()
    assert task_id.startswith("higgsfield_")
    assert fake.post_count() == 1 and fake.poll_count() == 0
    assert f"get the images later with: soul fetch {task_id} --wait --out " in result.stderr


def test_dry_run_prints_the_body_and_price_and_sends_nothing(fake: Fake302) -> None:
    env = soul_env(fake)
    del env["SOUL_API_KEY"]  # a dry run needs no key
    result = run_soul(
        "generate", "a dog", "--style", "y2k", "--ar", "9:16", "--seed", "7", "--dry-run", env=env
    )
    assert result.code == 0, result.stderr
    body = json.loads(result.stdout)
    assert body == {
        "quality": "720p",
        "aspect_ratio": "9:16",
        "prompt": "a dog",
        "enhance_prompt": False,
        "seed": 7,
        "style_id": resolve_style("Y2K").id,
        "negative_prompt": "",
    }
    assert "0.1 PTC" in result.stderr
    assert fake.requests() == []


def test_dry_run_json_includes_cost(fake: Fake302) -> None:
    result = run_soul("generate", "a dog", "-q", "1080p", "--dry-run", "--json", fake=fake)
    payload = json.loads(result.stdout)
    assert payload["cost_ptc"] == 0.2 and payload["body"]["quality"] == "1080p"
    assert payload["url"] == fake.base_url + "/higgsfield/text2image_soul"
    assert fake.requests() == []


def test_timeout_names_the_task_and_how_to_resume(fake: Fake302, out_dir: Path) -> None:
    fake.settings.never_finish = True
    result = run_soul("generate", "a dog", "--timeout", "1.5", "-o", str(out_dir), fake=fake)
    assert result.code == 11
    task_id = fake.requests("GET")[0].path.split("/")[3]
    assert task_id in result.stderr
    assert f"soul fetch {task_id} --wait" in result.stderr
    assert len(result.stderr.strip().splitlines()) <= 3
    assert fake.post_count() == 1


def test_image_host_never_sees_the_key(fake: Fake302, out_dir: Path) -> None:
    result = run_soul("generate", "a dog", "-o", str(out_dir), fake=fake)
    assert result.code == 0
    image_requests = fake.requests(server="images")
    assert len(image_requests) == 4
    for request in image_requests:
        assert "authorization" not in request.headers
        assert SENTINEL_KEY not in json.dumps(request.headers)
    for request in fake.requests():
        assert request.headers["authorization"] == f"Bearer {SENTINEL_KEY}"


def test_no_spinner_or_escape_codes_when_stderr_is_not_a_terminal(
    fake: Fake302, out_dir: Path
) -> None:
    result = run_soul("generate", "a dog", "-o", str(out_dir), fake=fake)
    assert "\r" not in result.stderr and "\x1b" not in result.stderr
    assert all(line.startswith("/") for line in result.lines)


def test_unusable_output_directory_is_found_before_paying(fake: Fake302, tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    result = run_soul("generate", "a dog", "-o", str(blocker / "pics"), fake=fake)
    assert result.code == 14
    assert result.stderr.endswith(
        f"soul: error: cannot create output directory {blocker / 'pics'}: Not a directory; "
        "nothing was sent\n"
    )
    assert fake.requests() == []


def test_out_that_is_a_file_says_so_and_sends_nothing(fake: Fake302, tmp_path: Path) -> None:
    somefile = tmp_path / "somefile"
    somefile.write_text("notes")
    result = run_soul("generate", "a dog", "-o", str(somefile), fake=fake)
    assert result.code == 2
    assert result.stderr == (
        f"soul: error: output directory {somefile} is a file, not a directory "
        "(give --out a directory; soul names the 4 images itself)\n"
    )
    assert fake.requests() == [] and somefile.read_text() == "notes"


def test_no_wait_refuses_an_out_that_is_a_file_before_paying(fake: Fake302, tmp_path: Path) -> None:
    somefile = tmp_path / "somefile"
    somefile.write_text("notes")
    result = run_soul("generate", "a dog", "--no-wait", "-o", str(somefile), fake=fake)
    assert result.code == 2 and "is a file, not a directory" in result.stderr
    assert fake.requests() == []
