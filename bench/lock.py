#!/usr/bin/env python3
"""keel vs uv installing a pylock.toml over the network (issue 14).

    python3 bench/lock.py            # N=9 interleaved rounds, the web set
    python3 bench/lock.py --quick    # N=3

The web set's pinned wheels are served from 127.0.0.1 by a threading HTTP
server this script starts (the standard library's; never a remote index), and
a pylock.toml names each by its loopback URL, size and sha256. Each round
times, in a shuffled order and into fresh venvs:

- cold: empty caches (keel's download cache and archive cache; uv's cache);
- warm: downloads cached (keel: the content-keyed download cache and the
  archive cache; uv: its cache), a fresh venv;

for `keel install -r pylock.toml` and `uv pip sync --preview pylock.toml`.
The goals: cold <= 0.8x uv, warm <= 0.6x uv. `keel -v` of one cold run shows
where keel's cold time goes (download, archives, stage, commit).

It reuses bench/bench.py's building blocks (the keel build, the pinned uv,
the set's download, the timing with GNU time); Python 3.11 stdlib only.
"""

from __future__ import annotations

import argparse
import functools
import http.server
import json
import random
import shutil
import statistics
import sys
import tempfile
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench  # noqa: E402

SCENARIOS = ("keel_cold", "uv_cold", "keel_warm", "uv_warm")
GOALS = {"cold": 0.8, "warm": 0.6}


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # noqa: D401 - stdlib signature
        pass


def serve(directory: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    handler = functools.partial(QuietHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def write_lock(path: Path, wheels: list[Path], base: str) -> None:
    lines = ['lock-version = "1.0"', 'created-by = "keel bench/lock.py"', ""]
    for wheel in wheels:
        name, version = wheel.name.split("-")[:2]
        lines += [
            "[[packages]]",
            f'name = "{name.lower().replace("_", "-")}"',
            f'version = "{version}"',
            f'wheels = [{{ url = "{base}/{wheel.name}", size = {wheel.stat().st_size}, '
            f'hashes = {{ sha256 = "{bench.sha256_file(wheel)}" }} }}]',
            "",
        ]
    path.write_text("\n".join(lines))


def commands(keel: str, uv: str, lock: Path, venv: Path, cache: Path) -> dict[str, list[str]]:
    python = str(venv / "bin" / "python")
    return {
        "keel": [keel, "install", "-q", "--venv", str(venv), "--cache-dir", str(cache),
                 "-r", str(lock)],
        "uv": [uv, "pip", "sync", "-q", "--preview", "--no-config", "--python", python,
               "--cache-dir", str(cache), "--link-mode", "hardlink", str(lock)],
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=9)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--python", default="python3")
    ap.add_argument("--keel", type=Path)
    ap.add_argument("--scratch", type=Path, default=Path("/var/tmp"))
    args = ap.parse_args(argv)
    runs = 3 if args.quick else args.runs
    work = bench.BENCH / "work"
    keel = args.keel or bench.build_keel(bench.REPO / "target")
    uv, uv_version = bench.install_uv(work / "tools", args.python)
    wheels = bench.download_set("web", work / "wheels" / "web", args.python)
    root = Path(tempfile.mkdtemp(prefix="keel-bench-lock-", dir=args.scratch))
    served = root / "served"
    served.mkdir()
    for wheel in wheels:
        shutil.copy2(wheel, served / wheel.name)
    server, base = serve(served)
    lock = root / "pylock.toml"
    write_lock(lock, sorted(served.glob("*.whl")), base)
    env = bench.clean_env()
    warm = {tool: root / f"warm-cache-{tool}" for tool in ("keel", "uv")}
    fill = {tool: root / "fill" / tool for tool in ("keel", "uv")}
    run_venvs(args.python, *fill.values())
    for tool in ("keel", "uv"):
        bench.run(commands(str(keel), str(uv), lock, fill[tool], warm[tool])[tool], env=env)
    samples: dict[str, list[float]] = {s: [] for s in SCENARIOS}
    rng = random.Random(14)
    for index in range(runs + 1):
        rd = root / f"round-{index:02d}"
        venvs = {s: rd / s / "venv" for s in SCENARIOS}
        run_venvs(args.python, *venvs.values())
        order = list(SCENARIOS)
        rng.shuffle(order)
        for sid in order:
            tool, kind = sid.split("_")
            cache = warm[tool] if kind == "warm" else rd / sid / "cache"
            cmd = commands(str(keel), str(uv), lock, venvs[sid], cache)[tool]
            sample = bench.timed(cmd, rd / f"{sid}.log", env, sync=True)
            if index:  # round 0 warms up
                samples[sid].append(sample.seconds)
        if index:
            bench.log(f"lock: round {index}/{runs}: " + ", ".join(
                f"{sid} {bench.ms(samples[sid][-1])}" for sid in SCENARIOS))
    verbose = commands(str(keel), str(uv), lock, root / "verbose" / "venv", root / "verbose" / "c")
    run_venvs(args.python, root / "verbose" / "venv")
    cmd = verbose["keel"]
    cmd[cmd.index("-q")] = "-v"
    cold_profile = bench.run(cmd, env=env)
    server.shutdown()
    report = {sid: statistics.median(v) for sid, v in samples.items()}
    ratios = {kind: report[f"keel_{kind}"] / report[f"uv_{kind}"] for kind in GOALS}
    print(f"\nlock install of the web set ({len(wheels)} wheels) from loopback, "
          f"{runs} rounds, uv {uv_version}")
    for sid in SCENARIOS:
        print(f"  {sid:10} median {bench.ms(report[sid]):>8}  min {bench.ms(min(samples[sid])):>8}")
    for kind, goal in GOALS.items():
        verdict = "PASS" if ratios[kind] <= goal else "MISS"
        print(f"  {kind} keel/uv  {ratios[kind]:.2f}  (goal <= {goal})  {verdict}")
    timing = [line for line in (cold_profile.stderr or "").splitlines() if "time:" in line]
    print("  keel cold, where the time goes:")
    for line in timing or ["(no -v timing line)"]:
        print("    " + line)
    out = bench.BENCH / "results"
    out.mkdir(exist_ok=True)
    (out / f"lock-{'quick-' if args.quick else ''}{len(list(out.glob('lock-*')))}.json").write_text(
        json.dumps({"samples": samples, "medians": report, "ratios": ratios,
                    "uv": uv_version}, indent=1) + "\n")
    shutil.rmtree(root)
    return 0


def run_venvs(python: str, *venvs: Path) -> None:
    bench.run([python, "-m", "venv", "--without-pip", *map(str, venvs)])


if __name__ == "__main__":
    sys.exit(main())
