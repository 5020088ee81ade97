#!/usr/bin/env python3
"""keel's benchmark harness (issue 6): keel vs uv on real PyPI wheels.

One command does everything:

    python3 bench/bench.py            # N=15 interleaved rounds, both sets
    python3 bench/bench.py --quick    # N=3, a smoke run
    python3 bench/bench.py --runs 7 --sets data
    python3 bench/bench.py --sets scale   # 100,000-module synthetic wheel + plotly

It

1. builds keel (`cargo build --release --locked`; $CARGO_TARGET_DIR is honoured);
2. downloads the pinned, hash-checked wheels of bench/requirements/<set>.txt
   (CPython 3.11, manylinux x86_64) with `pip download --require-hashes`; the
   scale set adds a synthetic wheel of 100,000 small modules (1,000 packages
   of 100 modules) that this script writes itself, deterministically, with a
   correct RECORD;
3. installs the pinned uv of bench/requirements/uv.txt into a scratch venv;
4. for each set, runs N rounds; each round times, in a shuffled order, every
   install scenario for keel and uv, then the no-op installs and the floors
   (`cp -al`, `sha256sum`). Every timed run gets FRESH paths (venv, and cache
   for the cold runs), in a directory made for this run under --scratch
   (default /var/tmp). Nothing is deleted between timed runs: deleting
   thousands of files on ext4 slows later file creation for a while, so
   everything a set made is deleted once after the set, followed by `sync`
   and a pause (`--settle`). `sync` also runs (untimed) before every timed
   run, so that no run pays for the previous run's writeback;
5. prints medians and the issue's ratios with PASS/MISS, and writes every
   sample as JSON to bench/results/<timestamp>.json.

Peak memory is the child's ru_maxrss from wait4(2): the largest resident set
of the process or of any descendant it waited for (uv runs the interpreter
once to query it; that child counts too).

`--profile` additionally runs keel's warm and cold installs under
`perf stat` and `perf record` (when perf works) and `strace -c -f` (when
present), and once with `-v`; the reports land in bench/work/profile/.

Python 3.11 standard library only.
"""

from __future__ import annotations

import argparse
import base64
import datetime as _dt
import hashlib
import json
import os
import platform
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
REQUIREMENTS = BENCH / "requirements"
SETS = ("web", "data", "scale")
# Scenarios a set leaves out: compiling 100,000 modules twice a round would
# take minutes and says nothing the web and data sets do not.
SKIP = {"scale": {"keel_warm_compile", "uv_warm_compile"}}
# The goals where a set has its own (else the RATIOS column).
SET_GOALS = {"scale": {"warm_vs_uv": 0.6, "cold_vs_uv": 0.5}}
# The synthetic wheel of the scale set: packages x modules per package
# (`__init__` included), so PACKAGES * MODULES files besides .dist-info.
SYNTH_NAME, SYNTH_VERSION = "keel_scale_synth", "1.0.0"
SYNTH_PACKAGES, SYNTH_MODULES = 1000, 100

# pip 23 does not widen one --platform to older manylinux tags: name them all.
PLATFORM_ARGS = [
    "--only-binary", ":all:",
    "--python-version", "3.11",
    "--implementation", "cp",
    "--abi", "cp311",
    "--platform", "manylinux_2_28_x86_64",
    "--platform", "manylinux_2_27_x86_64",
    "--platform", "manylinux_2_24_x86_64",
    "--platform", "manylinux_2_17_x86_64",
    "--platform", "manylinux2014_x86_64",
]


class BenchError(Exception):
    """A failure that ends the benchmark with a clear message."""


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    """Run an untimed helper command; raise BenchError with its output on failure."""
    proc = subprocess.run(cmd, capture_output=True, text=True, **kwargs)
    if proc.returncode != 0:
        raise BenchError(
            f"command failed (exit {proc.returncode}): {' '.join(map(str, cmd))}\n"
            f"{proc.stdout[-4000:]}{proc.stderr[-4000:]}"
        )
    return proc


# ---------------------------------------------------------------- wheels


@dataclass
class Pin:
    name: str
    version: str
    sha256: str


def read_pins(path: Path) -> list[Pin]:
    pins = []
    for lineno, line in enumerate(path.read_text().splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        m = re.fullmatch(r"([A-Za-z0-9._-]+)==(\S+)\s+--hash=sha256:([0-9a-f]{64})", line)
        if not m:
            raise BenchError(f"{path}:{lineno}: expected 'name==version --hash=sha256:HEX'")
        pins.append(Pin(*m.groups()))
    if len({p.sha256 for p in pins}) != len(pins):
        raise BenchError(f"{path}: expected one distinct hash per pin")
    return pins


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def pinned_wheels(directory: Path, pins: list[Pin]) -> tuple[dict[str, Path], int]:
    """Delete unpinned or damaged wheels in `directory`; return hash -> file and
    the number of pins without a file."""
    wanted = {p.sha256 for p in pins}
    present: dict[str, Path] = {}
    for whl in sorted(directory.glob("*.whl")):
        digest = sha256_file(whl)
        if digest in wanted:
            present[digest] = whl
        else:
            log(f"removing unpinned or damaged {whl.name}")
            whl.unlink()
    return present, len(wanted - present.keys())


def download_set(name: str, wheel_dir: Path, python: str) -> list[Path]:
    req = REQUIREMENTS / f"{name}.txt"
    pins = read_pins(req)
    wheel_dir.mkdir(parents=True, exist_ok=True)
    present, missing = pinned_wheels(wheel_dir, pins)
    if missing:
        log(f"{name}: {missing} of {len(pins)} pinned wheels missing; downloading")
        run([python, "-m", "pip", "download", "--disable-pip-version-check", "--no-input",
             "--progress-bar", "off", "--no-deps", "--require-hashes", *PLATFORM_ARGS,
             "-r", str(req), "-d", str(wheel_dir)])
        present, missing = pinned_wheels(wheel_dir, pins)
        if missing:
            raise BenchError(f"{name}: {missing} pinned wheels still missing after download")
    return [present[p.sha256] for p in pins]


def record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
    return "sha256=" + digest.decode()


def synthetic_wheel(directory: Path) -> Path:
    """The scale set's synthetic wheel: SYNTH_PACKAGES packages of SYNTH_MODULES
    small modules each under one top-level package, with METADATA, WHEEL and a
    RECORD carrying every file's sha256 and size. The same bytes every time
    (fixed timestamps and order), so it is written once and reused."""
    directory.mkdir(parents=True, exist_ok=True)
    name = f"{SYNTH_NAME}-{SYNTH_VERSION}-py3-none-any.whl"
    path = directory / f"{SYNTH_PACKAGES}x{SYNTH_MODULES}" / name
    if path.exists():
        return path
    path.parent.mkdir(exist_ok=True)
    log(f"writing the synthetic wheel {path} ({SYNTH_PACKAGES * SYNTH_MODULES} modules)")
    files: list[tuple[str, bytes]] = [(f"{SYNTH_NAME}/__init__.py", b'"""keel scale set."""\n')]
    for p in range(SYNTH_PACKAGES):
        pkg = f"{SYNTH_NAME}/p{p:04d}"
        files.append((f"{pkg}/__init__.py", f"PACKAGE = {p}\n".encode()))
        for m in range(1, SYNTH_MODULES):
            body = f'"""Module {m} of package {p}."""\n\nVALUE = {p * SYNTH_MODULES + m}\n'
            files.append((f"{pkg}/m{m:03d}.py", body.encode()))
    dist = f"{SYNTH_NAME}-{SYNTH_VERSION}.dist-info"
    files.append((f"{dist}/METADATA", f"Metadata-Version: 2.1\nName: {SYNTH_NAME}\n"
                  f"Version: {SYNTH_VERSION}\n".encode()))
    files.append((f"{dist}/WHEEL", b"Wheel-Version: 1.0\nGenerator: keel-bench\n"
                  b"Root-Is-Purelib: true\nTag: py3-none-any\n"))
    record = "".join(f"{n},{record_hash(d)},{len(d)}\n" for n, d in files)
    files.append((f"{dist}/RECORD", (record + f"{dist}/RECORD,,\n").encode()))
    tmp = path.with_suffix(".tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
        for n, d in files:
            info = zipfile.ZipInfo(n, date_time=(2020, 1, 1, 0, 0, 0))
            info.external_attr = 0o100644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, d)
    tmp.rename(path)
    return path


def set_wheels(name: str, wheel_dir: Path, python: str) -> list[Path]:
    """The wheels of one set: the pinned downloads, plus the synthetic wheel
    for the scale set (kept apart: pinned_wheels deletes unpinned files)."""
    wheels = download_set(name, wheel_dir / name, python)
    if name == "scale":
        wheels.append(synthetic_wheel(wheel_dir / "synthetic"))
    return wheels


def set_stats(wheels: list[Path]) -> dict:
    files = size = 0
    for whl in wheels:
        with zipfile.ZipFile(whl) as z:
            infos = [i for i in z.infolist() if not i.is_dir()]
            files += len(infos)
            size += sum(i.file_size for i in infos)
    return {
        "wheels": len(wheels),
        "files": files,
        "unpacked_bytes": size,
        "wheel_bytes": sum(w.stat().st_size for w in wheels),
    }


# ---------------------------------------------------------------- tools


def build_keel(target_dir: Path) -> Path:
    log(f"cargo build --release --locked (CARGO_TARGET_DIR={target_dir})")
    env = dict(os.environ, CARGO_TARGET_DIR=str(target_dir))
    proc = subprocess.run(["cargo", "build", "--release", "--locked", "--bin", "keel"],
                          cwd=REPO, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise BenchError(f"cargo build failed:\n{proc.stderr[-6000:]}")
    keel = target_dir / "release" / "keel"
    if not os.access(keel, os.X_OK):
        raise BenchError(f"no keel binary at {keel} after the build")
    return keel


def install_uv(tools: Path, python: str) -> tuple[Path, str]:
    req = REQUIREMENTS / "uv.txt"
    (pin,) = read_pins(req)
    venv = tools / f"uv-{pin.version}"
    uv = venv / "bin" / "uv"
    if not uv.exists():
        log(f"installing uv=={pin.version} into {venv}")
        if venv.exists():
            shutil.rmtree(venv)
        run([python, "-m", "venv", str(venv)])
        run([str(venv / "bin" / "python"), "-m", "pip", "install", "--disable-pip-version-check",
             "--no-input", "--progress-bar", "off", "--no-deps", "--require-hashes",
             "-r", str(req)])
    version = run([str(uv), "--version"]).stdout.strip()
    if pin.version not in version.split():
        raise BenchError(f"{uv} reports {version!r}, expected {pin.version}")
    return uv, version


def check_python(python: str) -> str:
    out = run([python, "-c", "import sys, platform; print(platform.python_implementation(),"
               " '%d.%d.%d' % sys.version_info[:3])"]).stdout.split()
    if out[0] != "CPython" or not out[1].startswith("3.11."):
        raise BenchError(f"{python} is {' '.join(out)}; the wheel sets are for CPython 3.11 "
                         "(pass --python)")
    return out[1]


# ---------------------------------------------------------------- timing


@dataclass
class Sample:
    seconds: float
    maxrss_kb: int
    user: float
    sys: float


def gnu_time() -> str | None:
    """/usr/bin/time if it is GNU time (Debian package `time`), else None."""
    exe = "/usr/bin/time"
    if not os.access(exe, os.X_OK):
        return None
    proc = subprocess.run([exe, "-f", "%M", "true"], capture_output=True, text=True)
    return exe if proc.returncode == 0 and proc.stderr.strip().isdigit() else None


GNU_TIME = gnu_time()


def timed(cmd: list[str], logfile: Path, env: dict[str, str], sync: bool) -> Sample:
    """Run `cmd` (stdout+stderr to logfile), return wall time and rusage.

    Wall time is measured here. The rusage comes from GNU time when it is
    there: a process spawned straight from this driver starts in (a copy of)
    the driver's address space, and Linux keeps that in ru_maxrss across exec,
    so every child would report at least the driver's own ~30 MB. GNU time
    forks from a ~1 MB process. Its %M is the peak RSS of the command or of any
    descendant it waited for. Without GNU time, wait4's numbers are used as
    they are (and peak RSS is then only an upper bound)."""
    exe = shutil.which(cmd[0]) if "/" not in cmd[0] else cmd[0]
    if exe is None:
        raise BenchError(f"{cmd[0]}: not found")
    argv = [exe, *cmd[1:]]
    usage = logfile.with_suffix(".rusage")
    if GNU_TIME:
        argv = [GNU_TIME, "-f", "%M %U %S", "-o", str(usage), *argv]
    if sync:
        os.sync()
    actions = [
        (os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0),
        (os.POSIX_SPAWN_OPEN, 1, str(logfile), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644),
        (os.POSIX_SPAWN_DUP2, 1, 2),
    ]
    start = time.perf_counter()
    pid = os.posix_spawn(argv[0], argv, env, file_actions=actions)
    _, status, ru = os.wait4(pid, 0)
    elapsed = time.perf_counter() - start
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        tail = logfile.read_text(errors="replace")[-4000:]
        raise BenchError(f"timed command failed (exit {code}): {' '.join(cmd)}\n{tail}")
    if GNU_TIME:
        fields = usage.read_text().split()[-3:]
        return Sample(elapsed, int(fields[0]), float(fields[1]), float(fields[2]))
    return Sample(elapsed, ru.ru_maxrss, ru.ru_utime, ru.ru_stime)


# ---------------------------------------------------------------- scenarios

# (id, label). The install scenarios run first in each round (shuffled), then
# the second phase (shuffled): the no-ops run on the venvs the warm installs
# of the same round made, the floors on keel's warm venv of the round.
INSTALLS = [
    ("keel_warm", "keel warm (default: clone->hardlink)"),
    ("keel_warm_hardlink", "keel warm --link-mode hardlink"),
    ("keel_warm_verify", "keel warm --verify"),
    ("keel_warm_shared", "keel warm from a --shared-cache layer (own cache: the probe only)"),
    ("uv_warm", "uv warm --link-mode hardlink"),
    ("keel_warm_compile", "keel warm --compile-bytecode"),
    ("uv_warm_compile", "uv warm --compile-bytecode --link-mode hardlink"),
    ("keel_cold", "keel cold (empty cache)"),
    ("uv_cold", "uv cold (empty cache)"),
]
SECOND = [
    ("keel_noop", "keel no-op (all installed)"),
    ("uv_noop", "uv no-op (all installed)"),
    ("floor_cp_al", "floor: cp -al site-packages"),
    ("floor_sha256", "floor: sha256sum all files, 2 procs"),
]
LABELS = dict(INSTALLS + SECOND)

# (id, label, numerator, denominator(s) summed, goal)
RATIOS = [
    ("warm_vs_uv", "warm default / uv warm hardlink", "keel_warm", ["uv_warm"], 0.9, "time"),
    ("warm_vs_cp_al", "warm / cp -al floor", "keel_warm", ["floor_cp_al"], 1.2, "time"),
    ("verify_vs_uv_sha", "warm --verify / (uv warm + sha256sum)", "keel_warm_verify",
     ["uv_warm", "floor_sha256"], 0.8, "time"),
    ("compile_vs_uv", "warm --compile-bytecode / uv warm --compile-bytecode",
     "keel_warm_compile", ["uv_warm_compile"], 0.9, "time"),
    ("cold_vs_uv", "cold / uv cold", "keel_cold", ["uv_cold"], 1.0, "time"),
    ("shared_vs_warm", "warm from a shared layer / warm from the own cache",
     "keel_warm_shared", ["keel_warm"], 1.1, "time"),
    ("noop_vs_uv", "no-op / uv no-op", "keel_noop", ["uv_noop"], 1.0, "time"),
    ("mem_warm_vs_uv", "peak RSS warm: keel / uv", "keel_warm", ["uv_warm"], 1.0, "rss"),
    ("mem_cold_vs_uv", "peak RSS cold: keel / uv", "keel_cold", ["uv_cold"], 1.0, "rss"),
]
# Informational ratios (no goal in the issue).
EXTRA_RATIOS = [
    ("warm_hardlink_vs_uv", "warm --link-mode hardlink / uv warm", "keel_warm_hardlink", ["uv_warm"]),
    ("verify_vs_warm", "warm --verify / warm", "keel_warm_verify", ["keel_warm"]),
    ("cold_vs_warm", "cold / warm", "keel_cold", ["keel_warm"]),
    ("uv_warm_vs_cp_al", "uv warm / cp -al floor", "uv_warm", ["floor_cp_al"]),
]

SHA_FLOOR = 'find "$1" -type f -print0 | xargs -0 -P2 -n 500 sha256sum > /dev/null'


class Harness:
    def __init__(self, args, keel: Path, uv: Path, python: str, wheels: list[Path], root: Path):
        self.args = args
        self.keel = str(keel)
        self.uv = str(uv)
        self.python = python
        self.wheels = [str(w) for w in wheels]
        self.root = root
        self.env = clean_env()
        self.skip: set[str] = set()

    def keel_cmd(self, venv: Path, cache: Path, *flags: str) -> list[str]:
        return [self.keel, "install", "-q", "--venv", str(venv), "--cache-dir", str(cache),
                *flags, *self.wheels]

    def uv_cmd(self, venv: Path, cache: Path, quiet: bool = True, *flags: str) -> list[str]:
        return [self.uv, "pip", "install", *(["-q"] if quiet else []), *flags, "--no-config",
                "--no-deps", "--no-index", "--offline", "--python", str(venv / "bin" / "python"),
                "--cache-dir", str(cache), "--link-mode", "hardlink", *self.wheels]

    def make_venvs(self, *venvs: Path) -> None:
        run([self.python, "-m", "venv", "--without-pip", *map(str, venvs)])

    def site_packages(self, venv: Path) -> Path:
        found = list((venv / "lib").glob("python3.*/site-packages"))
        if len(found) != 1:
            raise BenchError(f"{venv}: expected one lib/python3.*/site-packages, found {found}")
        return found[0]

    def prepare_warm_caches(self) -> dict:
        """Fill the warm caches (untimed) and record how keel proves files."""
        self.keel_cache = self.root / "warm-cache-keel"
        self.uv_cache = self.root / "warm-cache-uv"
        prep = self.root / "prepare"
        venvs = [prep / n for n in ("keel-fill", "uv-fill", "keel-v", "uv-v", "keel-compile-v")]
        self.make_venvs(*venvs)
        run(self.keel_cmd(venvs[0], self.keel_cache), env=self.env)
        run(self.uv_cmd(venvs[1], self.uv_cache), env=self.env)
        # A user's own cache beside the shared layer (the warm keel cache).
        self.shared_own_cache = self.root / "warm-cache-keel-own"
        shared_fill = prep / "keel-shared-fill"
        self.make_venvs(shared_fill)
        run(self.keel_cmd(shared_fill, self.shared_own_cache, "--shared-cache", str(self.keel_cache)),
            env=self.env)
        # One warm install with -v: which link mode, how many files by stamp.
        cmd = self.keel_cmd(venvs[2], self.keel_cache)
        cmd[cmd.index("-q")] = "-v"
        out = run(cmd, env=self.env)
        text = out.stdout + out.stderr
        info: dict = {"keel_warm_verbose_tail": text.strip().splitlines()[-3:]}
        m = re.search(r"(\d+) files proven by a stamp that still held, (\d+) by hashing; "
                      r"link mode (\w+)", text)
        if m:
            info.update(files_by_stamp=int(m[1]), files_by_hash=int(m[2]), link_mode=m[3])
        # One warm install with --compile-bytecode -v: files per second per worker.
        compile_cmd = None if "keel_warm_compile" in self.skip else \
            self.keel_cmd(venvs[4], self.keel_cache, "--compile-bytecode")
        if compile_cmd:
            compile_cmd[compile_cmd.index("-q")] = "-v"
            compiled = run(compile_cmd, env=self.env)
            info["keel_compile_verbose"] = [line for line in compiled.stderr.splitlines()
                                            if "time: bytecode" in line]
        # A no-op must not install anything, for either tool.
        noop = run(cmd, env=self.env)
        info["keel_noop_output"] = (noop.stdout + noop.stderr).strip().splitlines()[-1:]
        run(self.uv_cmd(venvs[3], self.uv_cache), env=self.env)
        uv_noop = run(self.uv_cmd(venvs[3], self.uv_cache, quiet=False), env=self.env)
        info["uv_noop_output"] = (uv_noop.stdout + uv_noop.stderr).strip().splitlines()[-1:]
        for tool, lines in (("keel", info["keel_noop_output"]), ("uv", info["uv_noop_output"])):
            if any(re.search(r"\bInstalled\b", line) for line in lines):
                raise BenchError(f"{tool}'s no-op install installed something: {lines}")
        # Both tools must have installed the same files.
        diff = compare_trees(self.site_packages(venvs[2]), self.site_packages(venvs[3]))
        info["tree_differences"] = diff
        if diff["only_keel"] or diff["only_uv"]:
            log(f"note: keel and uv installed different files: {diff}")
        return info

    def round(self, index: int, rng: random.Random, samples: dict[str, list]) -> list[str]:
        rd = self.root / f"round-{index:02d}"
        v = {sid: rd / sid / "venv" for sid, _ in INSTALLS if sid not in self.skip}
        self.make_venvs(*v.values())
        sync = not self.args.no_sync
        logs = rd / "logs"
        logs.mkdir(parents=True)
        commands = {
            "keel_warm": self.keel_cmd(v["keel_warm"], self.keel_cache),
            "keel_warm_hardlink": self.keel_cmd(v["keel_warm_hardlink"], self.keel_cache,
                                                "--link-mode", "hardlink"),
            "keel_warm_verify": self.keel_cmd(v["keel_warm_verify"], self.keel_cache, "--verify"),
            # The warm cache as a read-only layer; the own cache holds only
            # what a user's does after a first install (the interpreter's probe).
            "keel_warm_shared": self.keel_cmd(v["keel_warm_shared"], self.shared_own_cache,
                                              "--shared-cache", str(self.keel_cache)),
            "uv_warm": self.uv_cmd(v["uv_warm"], self.uv_cache),
            "keel_cold": self.keel_cmd(v["keel_cold"], rd / "keel_cold" / "cache"),
            "uv_cold": self.uv_cmd(v["uv_cold"], rd / "uv_cold" / "cache"),
        }
        if "keel_warm_compile" in v:
            commands["keel_warm_compile"] = self.keel_cmd(v["keel_warm_compile"], self.keel_cache,
                                                          "--compile-bytecode")
        if "uv_warm_compile" in v:
            commands["uv_warm_compile"] = self.uv_cmd(v["uv_warm_compile"], self.uv_cache, True,
                                                      "--compile-bytecode")
        order = [sid for sid, _ in INSTALLS if sid in v]
        rng.shuffle(order)
        second = [sid for sid, _ in SECOND]
        rng.shuffle(second)
        site = self.site_packages(v["keel_warm"])
        commands.update({
            "keel_noop": self.keel_cmd(v["keel_warm"], self.keel_cache),
            "uv_noop": self.uv_cmd(v["uv_warm"], self.uv_cache),
            "floor_cp_al": ["cp", "-al", str(site), str(rd / "floor_cp_al")],
            "floor_sha256": ["bash", "-c", SHA_FLOOR, "sha256-floor", str(site)],
        })
        load = system_load()
        for sid in order + second:
            sample = timed(commands[sid], logs / f"{sid}.log", self.env, sync)
            samples[sid].append(sample.__dict__)
        return {"order": order + second, "load_before": load, "load_after": system_load()}

    def cleanup(self) -> None:
        """Delete everything the set made, then let the file system settle."""
        if self.args.keep:
            return
        log(f"deleting {self.root} (untimed), then sync and {self.args.settle}s pause")
        shutil.rmtree(self.root)
        os.sync()
        time.sleep(self.args.settle)


def system_load() -> dict:
    """1-minute load average and the 10 s CPU/IO pressure ("some"), if readable."""
    out: dict = {}
    try:
        out["loadavg1"] = float(Path("/proc/loadavg").read_text().split()[0])
        for kind in ("cpu", "io"):
            line = Path(f"/proc/pressure/{kind}").read_text().splitlines()[0]
            out[f"{kind}_some_avg10"] = float(line.split()[1].split("=")[1])
    except (OSError, ValueError, IndexError):
        pass
    return out


def wait_quiet(max_seconds: float, threshold: float) -> dict:
    """Wait (at most max_seconds) until the 1-minute load average drops below
    threshold; other work on the machine inflates every number."""
    deadline = time.monotonic() + max_seconds
    load = system_load()
    while load.get("loadavg1", 0.0) >= threshold and time.monotonic() < deadline:
        time.sleep(10)
        load = system_load()
    return load


def clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("UV_", "KEEL_", "VIRTUAL_ENV", "PYTHON", "CONDA", "PIP_"))}
    env["UV_PYTHON_DOWNLOADS"] = "never"
    env["UV_NO_PROGRESS"] = "1"
    return env


INSTALLER_FILES = re.compile(
    r"\.dist-info/(RECORD|INSTALLER|REQUESTED|direct_url\.json|uv_cache\.json)$")


def compare_trees(keel_site: Path, uv_site: Path) -> dict:
    def files(root: Path) -> set[str]:
        out = set()
        for p in root.rglob("*"):
            if p.is_dir():
                continue
            rel = p.relative_to(root).as_posix()
            # Installer-specific metadata differs by design.
            if INSTALLER_FILES.search(rel) or "__pycache__" in rel:
                continue
            out.add(rel)
        return out

    k, u = files(keel_site), files(uv_site)
    return {"common": len(k & u), "only_keel": sorted(k - u)[:20], "only_uv": sorted(u - k)[:20]}


# ---------------------------------------------------------------- report


def summarize(samples: dict[str, list]) -> dict:
    out = {}
    for sid, runs in samples.items():
        if not runs:
            continue
        secs = [r["seconds"] for r in runs]
        rss = [r["maxrss_kb"] for r in runs]
        out[sid] = {
            "label": LABELS[sid],
            "runs": len(runs),
            "median_s": statistics.median(secs),
            "min_s": min(secs),
            "max_s": max(secs),
            "median_maxrss_kb": statistics.median(rss),
            "max_maxrss_kb": max(rss),
            "median_user_s": statistics.median(r["user"] for r in runs),
            "median_sys_s": statistics.median(r["sys"] for r in runs),
        }
    return out


def ratios(summary: dict, goals: dict[str, float]) -> dict:
    """The issue's ratios of medians; `goals` overrides a ratio's goal for this set."""
    out = {}

    def value(sid: str, kind: str) -> float:
        return summary[sid]["median_s" if kind == "time" else "median_maxrss_kb"]

    for rid, label, num, dens, goal, kind in RATIOS:
        if num not in summary or any(d not in summary for d in dens):
            continue
        r = value(num, kind) / sum(value(d, kind) for d in dens)
        goal = goals.get(rid, goal)
        out[rid] = {"label": label, "ratio": r, "goal": goal, "pass": r <= goal}
    for rid, label, num, dens in EXTRA_RATIOS:
        if num in summary and all(d in summary for d in dens):
            r = value(num, "time") / sum(value(d, "time") for d in dens)
            out[rid] = {"label": label, "ratio": r, "goal": None, "pass": None}
    return out


def print_report(results: dict) -> None:
    sets = [s for s in SETS if s in results["sets"]]
    print()
    for name in sets:
        data = results["sets"][name]
        st = data["stats"]
        print(f"== {name} set: {st['wheels']} wheels, {st['files']} files, "
              f"{st['unpacked_bytes'] / 1e6:.1f} MB unpacked ({st['wheel_bytes'] / 1e6:.1f} MB of "
              f"wheels); {data['runs']} rounds; keel link mode {data['prepare'].get('link_mode', '?')}")
        loads = [r["load_before"].get("loadavg1") for r in data["rounds"]]
        loads = [x for x in loads if x is not None]
        if loads:
            print(f"  machine load average before the rounds: median {statistics.median(loads):.2f}, "
                  f"max {max(loads):.2f}")
        for line in data["prepare"].get("keel_compile_verbose", []):
            print(f"  keel bytecode: {line.removeprefix('info: ')}")
        print(f"  {'scenario':<40} {'median':>9} {'min':>9} {'max':>9} {'user':>7} {'sys':>7} "
              f"{'maxRSS':>8}")
        for sid in [s for s, _ in INSTALLS + SECOND]:
            s = data["summary"].get(sid)
            if s:
                print(f"  {s['label']:<40} {ms(s['median_s']):>9} {ms(s['min_s']):>9} "
                      f"{ms(s['max_s']):>9} {ms(s['median_user_s']):>7} {ms(s['median_sys_s']):>7} "
                      f"{s['median_maxrss_kb'] / 1024:>6.1f}MB")
        print()
    print(f"  {'ratio (of medians)':<42} {'goal':>6}   " + "   ".join(f"{n:>11}" for n in sets))
    ids = [r[0] for r in RATIOS] + [r[0] for r in EXTRA_RATIOS]
    for rid in ids:
        cells, label, goal = [], None, None
        for name in sets:
            r = results["sets"][name]["ratios"].get(rid)
            if r is None:
                cells.append(f"{'-':>11}")
                continue
            label, goal = r["label"], goal if goal is not None else r["goal"]
            verdict = "" if r["pass"] is None else (" PASS" if r["pass"] else " MISS")
            if r["goal"] is not None and r["goal"] != goal:
                verdict += f" (goal <={r['goal']:.1f})"
            cells.append(f"{r['ratio']:>6.2f}{verdict:<5}")
        if label:
            g = f"<={goal:.1f}" if goal is not None else "info"
            print(f"  {label:<42} {g:>6}   " + "   ".join(cells))
    print()


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f}ms" if seconds < 10 else f"{seconds:.1f}s"


# ---------------------------------------------------------------- profile


def profile(h: Harness, name: str, out_dir: Path) -> dict:
    """keel warm and cold under perf stat / perf record / strace -c, and -v."""
    out_dir.mkdir(parents=True, exist_ok=True)
    base = h.root / "profile"
    reports = {}
    perf = shutil.which("perf")
    if perf and subprocess.run([perf, "stat", "-e", "task-clock", "true"],
                               capture_output=True).returncode != 0:
        perf = None
    strace = shutil.which("strace")
    tools = []
    if perf:
        tools.append(("perf-stat", lambda o: [perf, "stat", "-d", "-o", str(o) + ".txt"]))
        tools.append(("perf-record", lambda o: [perf, "record", "-g", "-q", "-o", str(o) + ".data"]))
    if strace:
        tools.append(("strace", lambda o: [strace, "-c", "-f", "-o", str(o) + ".txt"]))
    tools.append(("verbose", None))
    for kind in ("warm", "cold"):
        for tool, prefix in tools:
            d = base / f"{kind}-{tool}"
            venv = d / "venv"
            h.make_venvs(venv)
            cache = h.keel_cache if kind == "warm" else d / "cache"
            cmd = h.keel_cmd(venv, cache)
            stem = out_dir / f"{name}-{kind}-{tool}"
            if prefix is None:
                cmd[cmd.index("-q")] = "-v"
                env = dict(h.env, KEEL_LOG="debug")
                proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
                Path(str(stem) + ".log").write_text(proc.stdout + proc.stderr)
                reports[f"{kind}-{tool}"] = str(stem) + ".log"
                continue
            os.sync()
            run(prefix(stem) + cmd, env=h.env)
            if tool == "perf-record":
                rep = subprocess.run([perf, "report", "--stdio", "--no-children", "-i",
                                      str(stem) + ".data", "--percent-limit", "0.5"],
                                     capture_output=True, text=True)
                Path(str(stem) + ".txt").write_text(rep.stdout + rep.stderr)
            reports[f"{kind}-{tool}"] = str(stem) + ".txt"
    log(f"{name}: profiles in {out_dir}")
    return reports


# ---------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=15, help="interleaved rounds per set (default 15)")
    ap.add_argument("--quick", action="store_true", help="smoke run: 3 rounds, short pauses")
    ap.add_argument("--sets", default="web,data",
                    help="comma-separated: web,data,scale (default web,data)")
    ap.add_argument("--work", type=Path, default=BENCH / "work",
                    help="scratch directory (default bench/work, gitignored)")
    ap.add_argument("--scratch", type=Path, default=Path("/var/tmp"),
                    help="where each set's fresh run directory is made (default /var/tmp; "
                         "never reused, deleted after the set)")
    ap.add_argument("--results", type=Path, default=BENCH / "results",
                    help="where the JSON goes (default bench/results)")
    ap.add_argument("--python", default="python3", help="CPython 3.11 for venvs and pip")
    ap.add_argument("--keel", type=Path, help="use this keel binary instead of building one")
    ap.add_argument("--settle", type=float, default=60.0,
                    help="seconds to pause after deleting a set's files (default 60)")
    ap.add_argument("--no-sync", action="store_true", help="do not sync before each timed run")
    ap.add_argument("--keep", action="store_true", help="keep the venvs and caches of each set")
    ap.add_argument("--seed", type=int, default=6, help="seed of the per-round shuffles")
    ap.add_argument("--profile", action="store_true",
                    help="also profile keel warm/cold (perf, strace -c, KEEL_LOG=debug)")
    ap.add_argument("--nice", type=int, default=0,
                    help="run the driver and every timed command at this niceness (e.g. -10 "
                         "as root, on a shared machine)")
    ap.add_argument("--wait-quiet", type=float, default=0.0, metavar="SECONDS",
                    help="before each set, wait up to SECONDS for the load average to drop "
                         "below --quiet-load")
    ap.add_argument("--quiet-load", type=float, default=1.0,
                    help="load average regarded as a quiet machine (default 1.0)")
    args = ap.parse_args(argv)
    if args.nice:
        os.setpriority(os.PRIO_PROCESS, 0, args.nice)
    if args.quick:
        args.runs = 3
        args.settle = min(args.settle, 5.0)
    if args.runs < 1:
        ap.error("--runs must be at least 1")
    sets = [s.strip() for s in args.sets.split(",") if s.strip()]
    for s in sets:
        if s not in SETS:
            ap.error(f"unknown set {s!r} (known: {', '.join(SETS)})")
    for tool in ("cp", "bash", "find", "xargs", "sha256sum", *([] if args.keel else ["cargo"])):
        if not shutil.which(tool):
            raise BenchError(f"{tool} not found on PATH")

    if not GNU_TIME:
        log("warning: GNU time (/usr/bin/time, Debian package `time`) not found: peak RSS "
            "will include the driver's own RSS")
    py_version = check_python(args.python)
    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    if args.keel:
        keel = args.keel.resolve()
    else:
        target = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target")).resolve()
        keel = build_keel(target)
    keel_version = run([str(keel), "--version"]).stdout.strip()
    uv, uv_version = install_uv(work / "tools", args.python)
    commit = subprocess.run(["git", "-C", str(REPO), "describe", "--always", "--dirty"],
                            capture_output=True, text=True).stdout.strip()
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    results = {
        "timestamp": stamp,
        "runs": args.runs,
        "seed": args.seed,
        "sync_before_each_run": not args.no_sync,
        "niceness": os.getpriority(os.PRIO_PROCESS, 0),
        "rusage_source": "GNU time %M/%U/%S" if GNU_TIME else "wait4 (maxrss includes the driver)",
        "keel": {"binary": str(keel), "version": keel_version, "commit": commit},
        "uv": {"binary": str(uv), "version": uv_version},
        "machine": machine_info(work, py_version),
        "sets": {},
    }

    for name in sets:
        wheels = set_wheels(name, work / "wheels", args.python)
        stats = set_stats(wheels)
        # A brand-new directory per set and per invocation, outside bench/work:
        # ext4 places a new directory's inodes near its parent's, and where
        # earlier runs deleted tens of thousands of files, creating files
        # stays several times slower (measured here: a cold keel install of
        # the data set took 2.3-4.7 s under bench/work/runs, 0.9 s in /tmp).
        args.scratch.mkdir(parents=True, exist_ok=True)
        root = Path(tempfile.mkdtemp(prefix=f"keel-bench-{name}-", dir=args.scratch))
        h = Harness(args, keel, uv, args.python, wheels, root)
        h.skip = SKIP.get(name, set())
        load_at_start = wait_quiet(args.wait_quiet, args.quiet_load) if args.wait_quiet else \
            system_load()
        if load_at_start.get("loadavg1", 0.0) >= args.quiet_load:
            log(f"warning: the machine is busy (load {load_at_start}): other processes inflate "
                "every number and add noise; medians of interleaved runs keep the ratios fairer")
        log(f"{name}: {stats['wheels']} wheels, {stats['files']} files; filling warm caches")
        prepare = h.prepare_warm_caches()
        samples: dict[str, list] = {sid: [] for sid in LABELS}
        rng = random.Random(f"{args.seed}-{name}")
        log(f"{name}: warm-up round (discarded)")
        h.round(0, rng, {sid: [] for sid in LABELS})
        orders = []
        for i in range(1, args.runs + 1):
            t0 = time.monotonic()
            orders.append(h.round(i, rng, samples))
            load = orders[-1]["load_before"]
            s = {sid: runs[-1]["seconds"] for sid, runs in samples.items() if runs}
            log(f"{name}: round {i}/{args.runs} in {time.monotonic() - t0:.1f}s: "
                f"keel warm {ms(s['keel_warm'])}, uv warm {ms(s['uv_warm'])}, "
                f"keel cold {ms(s['keel_cold'])}, uv cold {ms(s['uv_cold'])}; "
                f"load {load.get('loadavg1', '?')}")
        summary = summarize(samples)
        results["sets"][name] = {
            "stats": stats,
            "wheels": [w.name for w in wheels],
            "runs": args.runs,
            "prepare": prepare,
            "summary": summary,
            "ratios": ratios(summary, SET_GOALS.get(name, {})),
            "rounds": orders,
            "load_at_start": load_at_start,
            "samples": samples,
        }
        if args.profile:
            results["sets"][name]["profile"] = profile(h, name, work / "profile")
        h.cleanup()

    args.results.mkdir(parents=True, exist_ok=True)
    out = args.results / f"{stamp}{'-quick' if args.quick else ''}.json"
    out.write_text(json.dumps(results, indent=1) + "\n")
    print_report(results)
    print(f"results: {out}")
    return 0


def machine_info(work: Path, py_version: str) -> dict:
    info = {"python": py_version, "kernel": platform.release(), "cpus": os.cpu_count()}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
        mem = Path("/proc/meminfo").read_text().split("\n", 1)[0]
        info["memory_kb"] = int(mem.split()[1])
    except OSError:
        pass
    fs = subprocess.run(["df", "-T", str(work)], capture_output=True, text=True).stdout.split("\n")
    if len(fs) > 1 and fs[1].split():
        info["filesystem"] = fs[1].split()[1]
    return info


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as e:
        print(f"bench: error: {e}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("bench: interrupted", file=sys.stderr)
        sys.exit(130)
