"""soul's benchmarks, side by side in one run, against the project's fake 302.AI.

    python benchmarks/run.py            # everything (about 15 minutes)
    python benchmarks/run.py --quick    # fewer repetitions, smaller batch
    python benchmarks/run.py --only startup,batch
    python benchmarks/run.py --only ledger --soul /tmp/old/.venv/bin/soul   # another soul

Each figure is a median over repeated runs and is printed with its target and PASS/FAIL.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from soulcli.fake302 import Fake302, FakeSettings

KEY = "sk-bench-0000000000000000000000000000000000000000"
BIN = Path(sys.executable).parent
SOUL = str(BIN / "soul")
BARE_APP = '''
import typer

app = typer.Typer()


@app.command()
def hello(name: str) -> None:
    """Say hello."""
    print(f"hello {name}")


@app.command()
def bye() -> None:
    """Say bye."""
    print("bye")


app()
'''
MB = 1024 * 1024


@dataclass
class Figure:
    name: str
    value: str
    target: str
    passed: bool | None  # None: informational


FIGURES: list[Figure] = []


def record(name: str, value: str, target: str = "", passed: bool | None = None) -> None:
    figure = Figure(name, value, target, passed)
    FIGURES.append(figure)
    verdict = "" if passed is None else ("PASS" if passed else "FAIL")
    print(f"  {name:<58} {value:>16}  {target:<28} {verdict}", flush=True)


@contextmanager
def scratch() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="soul-bench-") as name:
        yield Path(name)


def soul_env(base: Path, fake: Fake302 | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOUL_")}
    env.update(SOUL_CONFIG_DIR=str(base / "config"), SOUL_DATA_DIR=str(base / "data"))
    if fake is not None:
        env.update(SOUL_BASE_URL=fake.base_url, SOUL_API_KEY=KEY)
    return env


def wall(cmd: list[str], env: dict[str, str], cwd: Path | None = None) -> float:
    started = time.perf_counter()
    subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, check=False)
    return time.perf_counter() - started


def bench_startup(runs: int) -> None:
    print(f"Startup (median of {runs} runs each, interleaved, stdout piped)")
    with scratch() as base:
        bare = base / "bare.py"
        bare.write_text(BARE_APP)
        env = soul_env(base)
        commands: dict[str, list[str]] = {
            "bare Typer app: hello NAME": [sys.executable, str(bare), "hello", "x"],
            "bare Typer app: --help": [sys.executable, str(bare), "--help"],
            "soul --help": [SOUL, "--help"],
            "soul styles --search y2k": [SOUL, "styles", "--search", "y2k"],
            "soul config path": [SOUL, "config", "path"],
        }
        httpie = shutil.which("http", path=str(BIN)) or shutil.which("http")
        if httpie:
            commands["httpie: http --help"] = [httpie, "--help"]
        times: dict[str, list[float]] = {name: [] for name in commands}
        for cmd in commands.values():  # warm the page cache once
            wall(cmd, env)
        for _ in range(runs):
            for name, cmd in commands.items():
                times[name].append(wall(cmd, env))
        med = {name: statistics.median(values) for name, values in times.items()}
        for name, value in med.items():
            record(name, f"{value * 1000:.0f} ms")
        bare_cmd = med["bare Typer app: hello NAME"]
        ratio = med["soul styles --search y2k"] / bare_cmd
        record(
            "soul styles --search y2k / bare app command",
            f"{ratio:.2f}x",
            "<= 1.20x",
            ratio <= 1.20,
        )
        ratio_help = med["soul --help"] / bare_cmd
        record("soul --help / bare app command", f"{ratio_help:.2f}x", "(informational)")
        if httpie:
            ratio_http = med["soul styles --search y2k"] / med["httpie: http --help"]
            record(
                "soul styles --search y2k / http --help",
                f"{ratio_http:.2f}x",
                "< 0.50x",
                ratio_http < 0.5,
            )
        else:
            record(
                "soul styles --search y2k / http --help",
                "httpie missing",
                "pip install '.[bench]'",
                False,
            )
        probe = (
            "import sys\nfrom soulcli.cli import main\n"
            "for args in (['--help'], ['styles', '--search', 'y2k']):\n"
            "    try:\n        main(args)\n    except SystemExit:\n        pass\n"
            "print('httpx' in sys.modules)"
        )
        out = (
            subprocess.run(
                [sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=False
            )
            .stdout.strip()
            .splitlines()
        )
        imported = out[-1] if out else "?"
        record("httpx imported by --help or styles", imported, "False", imported == "False")


def bench_waiting(repeats: int, durations: tuple[float, ...]) -> None:
    print(f"Waiting overhead (median of {repeats} runs per T)")
    for total in durations:
        queue = min(1.0, total / 3)
        settings = FakeSettings(api_key=KEY, queue_seconds=queue, run_seconds=total - queue)
        delays: list[float] = []
        polls: list[int] = []
        with Fake302(settings) as fake, scratch() as base:
            env = soul_env(base, fake)
            for run in range(repeats):
                out = base / f"out{run}"
                before = set(fake.state.tasks)
                subprocess.run(
                    [SOUL, "generate", "benchmark", "-o", str(out)],
                    env=env,
                    capture_output=True,
                    check=True,
                )
                (task_id,) = set(fake.state.tasks) - before
                done_at = fake.state.tasks[task_id].finishes_at(settings)
                last_image = max(p.stat().st_mtime for p in out.glob("*.png"))
                delays.append(last_image - done_at)
                polls.append(sum(task_id in r.path for r in fake.requests("GET")))
        delay = statistics.median(delays)
        count = statistics.median(polls)
        record(
            f"T={total:g}s: completion -> 4 images on disk",
            f"{delay:.2f} s",
            "<= 1.00 s",
            delay <= 1.0,
        )
        limit = total / 2 + 3
        record(f"T={total:g}s: poll requests", f"{count:g}", f"<= {limit:g}", count <= limit)


def _max_rss_kb(cmd: list[str], env: dict[str, str]) -> tuple[int, str]:
    """Peak resident memory of a command (from a wrapper's rusage), and its stderr."""
    wrapper = (
        "import resource, subprocess, sys\n"
        "done = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, "
        "stderr=subprocess.PIPE, text=True)\n"
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
        "print(done.returncode, done.stderr.replace(chr(10), ' | '))"
    )
    out = subprocess.run(
        [sys.executable, "-c", wrapper, *cmd], env=env, capture_output=True, text=True, check=True
    )
    rss, detail = out.stdout.split("\n", 1)
    return int(rss), detail.strip()


def _submit(fake: Fake302, env: dict[str, str]) -> str:
    result = subprocess.run(
        [SOUL, "generate", "benchmark", "--no-wait"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.strip()


def bench_downloads(repeats: int) -> None:
    print(f"Downloads (median of {repeats} runs; 4 images in parallel vs 1 image alone)")
    import httpx

    for size, bandwidth in ((1 * MB, 1 * MB), (20 * MB, 8 * MB)):
        settings = FakeSettings(
            api_key=KEY, queue_seconds=0, run_seconds=0, image_size=size, bandwidth=bandwidth
        )
        with Fake302(settings) as fake, scratch() as base:
            env = soul_env(base, fake)
            task_id = _submit(fake, env)
            fake.prepare_images(task_id)
            url = f"{fake.image_base}/images/{task_id}/1/raw.png"
            singles, spans, rss = [], [], []
            for run in range(repeats):
                started = time.perf_counter()
                with httpx.stream("GET", url) as response:
                    for _ in response.iter_bytes():
                        pass
                singles.append(time.perf_counter() - started)
                out = base / f"out{run}"
                fetch_started = time.time()  # the single download's span may land late
                peak, detail = _max_rss_kb([SOUL, "fetch", task_id, "-o", str(out)], env)
                rss.append(peak)
                deadline = time.monotonic() + 5  # the server notes a transfer just after it
                while True:
                    ours = [span for span in fake.state.image_spans if span[0] >= fetch_started]
                    if len(ours) >= 4 or time.monotonic() > deadline:
                        break
                    time.sleep(0.05)
                if len(ours) < 4:
                    record(f"{size // MB} MB x4: image transfers seen", str(len(ours)), "4", False)
                    print(f"    soul fetch said: exit {detail}")
                    return
                starts, ends = zip(*ours, strict=True)
                spans.append(max(ends) - min(starts))
            label = f"{size // MB} MB x4 at {bandwidth // MB} MB/s each"
            single, span = statistics.median(singles), statistics.median(spans)
            record(f"{label}: one image alone", f"{single:.2f} s")
            record(f"{label}: all four (soul fetch -o)", f"{span:.2f} s")
            record(
                f"{label}: four / one", f"{span / single:.2f}x", "<= 1.30x", span / single <= 1.3
            )
            if size == 20 * MB:
                tiny = FakeSettings(api_key=KEY, queue_seconds=0, run_seconds=0, small_images=True)
                with Fake302(tiny) as small_fake, scratch() as small_base:
                    small_env = soul_env(small_base, small_fake)
                    small_task = _submit(small_fake, small_env)
                    baseline = statistics.median(
                        _max_rss_kb(
                            [SOUL, "fetch", small_task, "-o", str(small_base / f"o{i}")], small_env
                        )[0]
                        for i in range(repeats)
                    )
                growth = (statistics.median(rss) - baseline) / 1024
                record(
                    "20 MB x4: peak memory growth over 4 tiny images",
                    f"{growth:.1f} MB",
                    "< 30 MB",
                    growth < 30,
                )
                # Into a folder that has the images already: each is compared with the new
                # download, which must stream too.
                again = statistics.median(
                    _max_rss_kb([SOUL, "fetch", task_id, "-o", str(base / "out0")], env)[0]
                    for _ in range(repeats)
                )
                growth = (again - baseline) / 1024
                record(
                    "20 MB x4 already on disk: fetch's peak memory growth",
                    f"{growth:.1f} MB",
                    "< 30 MB",
                    growth < 30,
                )


def bench_batch(prompts: int, latency: float, concurrency: int) -> None:
    print(f"Batch throughput ({prompts} prompts, fake latency {latency:g} s)")
    settings = FakeSettings(api_key=KEY, queue_seconds=0, run_seconds=latency)
    walls: dict[int, float] = {}
    with Fake302(settings) as fake, scratch() as base:
        env = soul_env(base, fake)
        for level in (concurrency, 1):
            batch = base / f"prompts-{level}.txt"
            batch.write_text("".join(f"benchmark prompt {i} at {level}\n" for i in range(prompts)))
            started = time.perf_counter()
            subprocess.run(
                [SOUL, "batch", str(batch), "-o", str(base / f"out{level}"), "-c", str(level)],
                env=env,
                capture_output=True,
                check=True,
            )
            walls[level] = time.perf_counter() - started
    ideal = prompts / concurrency * latency
    record(
        f"--concurrency {concurrency}: wall time",
        f"{walls[concurrency]:.1f} s",
        f"ideal {ideal:g} s",
    )
    record(
        f"--concurrency {concurrency} / ideal",
        f"{walls[concurrency] / ideal:.2f}x",
        "<= 1.25x",
        walls[concurrency] / ideal <= 1.25,
    )
    record("--concurrency 1: wall time", f"{walls[1]:.1f} s", f"ideal {prompts * latency:g} s")
    record(
        f"speed-up of --concurrency {concurrency} over 1", f"{walls[1] / walls[concurrency]:.1f}x"
    )


def _spread(values: list[float], unit: str, scale: float = 1.0, digits: int = 1) -> str:
    """`12.3 ms (11.9-13.0)`: the median and the range of repeated measurements."""
    low, mid, high = min(values) * scale, statistics.median(values) * scale, max(values) * scale
    space = "" if unit == "x" else " "
    return f"{mid:.{digits}f}{space}{unit} ({low:.{digits}f}-{high:.{digits}f})"


def _cpu_of_children() -> float:
    """User plus system CPU seconds of every finished child process so far."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def bench_bigbatch(prompts: int, concurrency: int, latency: float, repeats: int) -> None:
    existing = (0, 20_000)
    print(
        f"Big batch into one folder ({prompts} prompts, --concurrency {concurrency}, fake "
        f"latency {latency:g} s, {repeats} runs per folder, interleaved)"
    )
    settings = FakeSettings(api_key=KEY, queue_seconds=0, run_seconds=latency, small_images=True)
    ideal = prompts / concurrency * latency
    cpu: dict[int, list[float]] = {count: [] for count in existing}
    walls: dict[int, list[float]] = {count: [] for count in existing}
    with Fake302(settings) as fake, scratch() as base:
        for run in range(repeats):
            for count in existing:
                # A fresh folder and ledger each run: only the files said to be there are.
                where = base / f"run{run}-{count}"
                out = where / "out"
                out.mkdir(parents=True)
                for i in range(count):
                    (out / f"earlier_{i}.png").touch()
                batch = where / "prompts.txt"
                batch.write_text("".join(f"big batch {run} {count} {i}\n" for i in range(prompts)))
                cmd = [SOUL, "batch", str(batch), "-o", str(out), "-c", str(concurrency)]
                cpu_before = _cpu_of_children()
                started = time.perf_counter()
                done = subprocess.run(cmd, env=soul_env(where, fake), capture_output=True)
                walls[count].append(time.perf_counter() - started)
                cpu[count].append((_cpu_of_children() - cpu_before) / prompts)
                saved = len(done.stdout.splitlines())
                if done.returncode != 0 or saved != 4 * prompts:
                    record(
                        f"{count} files: batch exit / images saved",
                        f"{done.returncode} / {saved}",
                        f"0 / {4 * prompts}",
                        False,
                    )
                    print("    " + done.stderr.decode(errors="replace")[-500:])
                    return
    for count in existing:
        label = f"{count} files in the folder"
        record(f"{label}: CPU per task", _spread(cpu[count], "ms", 1000), "<= 15 ms",
               statistics.median(cpu[count]) <= 0.015)  # fmt: skip
        ratio = [w / ideal for w in walls[count]]
        record(f"{label}: wall / ideal {ideal:g} s", _spread(ratio, "x", digits=2), "<= 1.15x",
               statistics.median(ratio) <= 1.15)  # fmt: skip
        rates = [prompts / w for w in walls[count]]
        record(f"{label}: tasks per second", _spread(rates, "/s"), f"ideal {prompts / ideal:g}")
    growth = statistics.median(cpu[existing[-1]]) / statistics.median(cpu[existing[0]])
    record(
        f"CPU per task, {existing[-1]} files / {existing[0]} files",
        f"{growth:.2f}x",
        "<= 1.15x (no growth)",
        growth <= 1.15,
    )


# Run by the Python of the soul being measured, so the ledger has that soul's schema:
# rows as soul writes them (4 images each, a batch's, failed and partial ones), the
# newest a finished task whose images are on disk, as `fetch --last` meets it.
MAKE_LEDGER = r"""
import json, random, sqlite3, sys, time
from pathlib import Path
from soulcli.ledger import Ledger

path, count, images = Path(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3])
with Ledger.open(path):
    pass  # the schema (and indexes) of the soul being measured
words = ("dog cat rain neon city forest portrait street night golden hour cinematic red kite "
         "lighthouse dusk ocean mountain snow robot garden film grain soft light").split()
states = ["completed"] * 18 + ["partial", "failed"]
rng = random.Random(7)
start = time.time() - 30 * count
with sqlite3.connect(path) as db:
    for i in range(count):
        task = f"higgsfield_{i:012x}"
        where = images if i == count - 1 else Path("/home/me/pics")
        saved = [{"index": k, "status": "completed", "url": f"https://file.302.ai/{task}_{k}.png",
                  "path": str(where / f"{task}_{k}.png"), "variant": "raw"} for k in range(1, 5)]
        state = "completed" if i == count - 1 else rng.choice(states)
        quality = rng.choice(["720p", "1080p"])
        db.execute(
            "INSERT INTO tasks (created_at, updated_at, prompt, style_id, style_name, aspect_ratio,"
            " quality, seed, price_ptc, api_host, out_dir, remote_id, state, images, batch_id,"
            " batch_line) VALUES (?,?,?,'id','Tokyo streetstyle','16:9',?,?,?,'https://api.302.ai',"
            "?,?,?,?,?,?)",
            (start + 30 * i, start + 30 * i, " ".join(rng.choices(words, k=rng.randint(4, 40))),
             quality, rng.randint(1, 999999), "0.2" if quality == "1080p" else "0.1", str(where),
             task, state, json.dumps(saved), i // 100 or None, i % 100 if i >= 100 else None),
        )
for k in range(1, 5):
    (images / f"higgsfield_{count - 1:012x}_{k}.png").write_bytes(b"\x89PNG\r\n\x1a\n")
"""


def bench_ledger(runs: int, rows: int) -> None:
    print(f"A ledger of {rows} tasks against one of 1 task (median of {runs} interleaved runs)")
    commands = {
        "history": ["history"],
        "history --search dog": ["history", "--search", "dog"],
        "history --search (no match)": ["history", "--search", "zebra"],
        "history --json --limit 20": ["history", "--json", "--limit", "20"],
        "fetch --last (saved)": ["fetch", "--last"],
    }
    with scratch() as base:
        envs = {}
        for count in (1, rows):
            where = base / f"ledger{count}"
            (where / "data").mkdir(parents=True)
            (where / "images").mkdir()
            # Not run from the checkout, whose soulcli `python -c` would import instead.
            subprocess.run(
                [str(Path(SOUL).with_name("python")), "-c", MAKE_LEDGER,
                 str(where / "data" / "tasks.db"), str(count), str(where / "images")],
                check=True,
                cwd=where,
            )  # fmt: skip
            envs[count] = soul_env(where)
        times: dict[tuple[str, int], list[float]] = {}
        for _ in range(runs + 1):  # the first round warms the page cache, and is dropped
            for name, args in commands.items():
                for count, env in envs.items():
                    times.setdefault((name, count), []).append(wall([SOUL, *args], env))
    for name in commands:
        small = [t * 1000 for t in times[(name, 1)][1:]]
        big = [t * 1000 for t in times[(name, rows)][1:]]
        ratio = statistics.median(big) / statistics.median(small)
        record(f"{name}: 1 task", _spread(small, "ms", digits=0))
        record(f"{name}: {rows} tasks", _spread(big, "ms", digits=0))
        record(f"{name}: {rows} / 1", f"{ratio:.2f}x", "<= 1.30x", ratio <= 1.3)


def sheet_images(where: Path, count: int, size: int = 1152) -> list[Path]:
    """`count` distinct PNGs at the model's 1:1 size, about as large as real ones (2 MB):
    gradients for shapes, and grain, which is what makes a photo's PNG big and slow."""
    from PIL import Image, ImageChops

    grain = Image.effect_noise((size, size), 24)
    ramp = Image.linear_gradient("L").resize((size, size))
    flipped = ramp.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    paths = []
    for i in range(count):
        blue = ImageChops.offset(grain, i * 19, i * 7)
        image = Image.merge(
            "RGB", (ramp.rotate(i * 6), ImageChops.add(flipped, blue, 2, -32), blue)
        )
        path = where / f"image_{i + 1:02d}.png"
        image.save(path, compress_level=3)  # level 3: made quickly, sized like real ones
        paths.append(path)
    return paths


def bench_sheet(runs: int) -> None:
    print(f"Contact sheet (median of {runs} runs, after one warm-up)")
    with scratch() as base:
        images = base / "images"
        images.mkdir()
        paths = sheet_images(images, 60)
        out = base / "sheet.png"
        cmd = [SOUL, "sheet", *map(str, paths), "-o", str(out)]
        env = soul_env(base)
        wall(cmd, env)  # the page cache holds the images, as after a download
        times = []
        for _ in range(runs):
            out.unlink(missing_ok=True)
            times.append(wall(cmd, env))
        made = out.is_file()
    median = statistics.median(times)
    record(
        "60-tile contact sheet (1152 px images)",
        f"{median:.2f} s" if made else "no sheet",
        "<= 2 s",
        made and median <= 2.0,
    )


def on_a_terminal(cmd: list[str], env: dict[str, str], columns: int = 120) -> float:
    """Wall time of `cmd` with stdout on a pseudo-terminal (drained as a terminal would)."""
    import fcntl
    import pty
    import struct
    import termios
    import threading

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))

    def drain() -> None:
        try:
            while os.read(master, 65536):
                pass
        except OSError:
            pass

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    started = time.perf_counter()
    subprocess.run(cmd, env=env, stdout=slave, stderr=slave, stdin=subprocess.DEVNULL, check=False)
    elapsed = time.perf_counter() - started
    os.close(slave)
    os.close(master)
    return elapsed


def bench_show(runs: int) -> None:
    print(f"soul show on a terminal (median of {runs} runs, 120 x 40, after one warm-up)")
    with scratch() as base:
        images = base / "images"
        images.mkdir()
        paths = sheet_images(images, 4)
        cmd = [SOUL, "show", *map(str, paths), "--protocol", "halfblock"]
        env = soul_env(base)
        on_a_terminal(cmd, env)
        times = [on_a_terminal(cmd, env) for _ in range(runs)]
    median = statistics.median(times)
    record(
        "soul show: 4 images (1152 px) drawn, from start",
        f"{median * 1000:.0f} ms",
        "<= 300 ms",
        median <= 0.3,
    )


def describe_machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    from importlib.metadata import version

    return (
        f"{platform.system()} {platform.machine()}, {cpu}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, typer {version('typer')}, "
        f"click {version('click')}, rich {version('rich')}, httpx {version('httpx')}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run soul's benchmarks side by side.")
    parser.add_argument("--quick", action="store_true", help="fewer runs, a smaller batch")
    parser.add_argument(
        "--only",
        default="startup,waiting,downloads,batch,sheet,bigbatch,ledger",
        help="comma-separated subset of startup, waiting, downloads, batch, sheet, show, "
        "bigbatch, ledger",
    )
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument(
        "--soul",
        type=Path,
        help="measure this soul instead (an older version in its own venv, say); "
        "the fake and the bare app stay this checkout's",
    )
    args = parser.parse_args(argv)
    if args.soul is not None:
        global SOUL
        SOUL = str(args.soul.absolute())
    chosen = set(args.only.split(","))
    print(describe_machine())
    benches: dict[str, Callable[[], None]] = {
        "startup": lambda: bench_startup(7 if args.quick else 30),
        "waiting": lambda: bench_waiting(
            1 if args.quick else 5, (3.0,) if args.quick else (3.0, 20.0)
        ),
        "downloads": lambda: bench_downloads(1 if args.quick else 3),
        "batch": lambda: bench_batch(16 if args.quick else 64, 2.0, 8),
        "sheet": lambda: bench_sheet(3 if args.quick else 7),
        "show": lambda: bench_show(5 if args.quick else 15),
        "bigbatch": lambda: (
            bench_bigbatch(32, 8, 1.0, 1) if args.quick else bench_bigbatch(1000, 32, 2.0, 3)
        ),
        "ledger": lambda: bench_ledger(5 if args.quick else 21, 2000 if args.quick else 100_000),
    }
    for name, bench in benches.items():
        if name in chosen:
            bench()
    if args.json:
        args.json.write_text(json.dumps([f.__dict__ for f in FIGURES], indent=2))
    failed = [f.name for f in FIGURES if f.passed is False]
    print(
        f"{len(FIGURES)} figures, {len(failed)} below target"
        + (": " + "; ".join(failed) if failed else "")
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
