"""How often the bundled local model answers needle-in-a-haystack questions, and how fast.

Generates N inputs (seeded, deterministic) of 20K..--max-chars characters, spread evenly: log
lines or prose with varied vocabulary, one planted fact at a random position, and a question that
asks for it (half quote the fact's wording, half paraphrase it). Each input is answered by a real
`rlm ask FILE QUESTION --json` subprocess with no --model (so the local model is root and sub),
once per prompt profile (RLM_PROMPT_PROFILE=small|frontier). A run is right when the planted value
appears in the answer (case-insensitive, whitespace normalised).

Each `rlm ask` starts its own llama-server, as a user's run does; its start time is read from the
trace on stderr ("local model ready ... in X s"). Before the runs, one server is started cold
(the model file evicted from the page cache) and one warm, directly through `LocalServer`.

The code under test is a copy of the rlm_cli package taken when the script starts
(OUT/snapshot-<hash>, run with PYTHONPATH and cwd=OUT), so edits to the working tree during a
long benchmark cannot mix versions; each result records the hash (--live-code runs the
installed package instead). Results are appended to --results (JSONL) as runs finish; a second invocation with the same file
skips runs already there, and `--summary-only` prints the summary of what is in the file. Inputs
run in a spread order (by size: smallest, largest, middle, ...) so a partial run covers the range.

    RLM_CACHE_DIR=/tmp/rlm_measure/cache python benchmarks/bench_local_model.py \\
        [--n 20] [--profiles small,frontier] [--max-chars 200000] [--seed 7] \\
        [--max-iterations 6] [--timeout 300] [--out DIR] [--no-cold] [--summary-only]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

MIN_CHARS = 20_000
READY = re.compile(r"local model ready on \S+ in ([\d.]+) s")

# --------------------------------------------------------------------------------------------
# Inputs


@dataclass(frozen=True)
class Case:
    index: int
    kind: str  # log | prose
    chars: int
    fact: str
    value: str
    question: str
    paraphrased: bool
    position: float  # where the fact sits, as a fraction of the text


WORDS = (
    "ledger harbor quartz meadow signal lantern copper orbit fabric summit delta granite willow "
    "beacon cipher thistle marble canyon ember falcon glacier hollow ivory juniper kestrel lagoon "
    "mosaic nectar onyx pepper quiver raven saffron tundra umber velvet walnut yarrow zephyr "
    "anchor bramble cobalt dune estuary fern gale heron inlet jasper kiln lichen mesa nimbus "
    "opal prairie quarry reef sable timber vale wharf basalt cedar drift"
).split()

SERVICES = "auth-svc billing gateway scheduler inventory search-api notifier ledger-sync media-proc reports".split()
PATHS = "users orders invoices sessions carts products reports exports webhooks tokens".split()
ERRORS = ("ConnectionResetError", "TimeoutError", "HTTP 503", "deadlock detected", "EOF on socket",
          "TLS handshake failed", "rate limited", "checksum mismatch")
PEOPLE = "alice bruno chen dana emeka farah goran hana ines jonas kofi lena marta nils oren priya".split()


def _ip(rng: random.Random) -> str:
    return f"{rng.choice((10, 172, 192))}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"


def _log_line(rng: random.Random, ts: float) -> str:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{rng.randint(0, 999):03d}Z"
    level = rng.choices(("INFO", "DEBUG", "WARN", "ERROR"), weights=(60, 25, 10, 5))[0]
    svc = rng.choice(SERVICES)
    kind = rng.randrange(9)
    if kind == 0:
        msg = (f"request {rng.getrandbits(40):010x} {rng.choice(('GET', 'POST', 'PUT', 'DELETE'))} "
               f"/api/v{rng.randint(1, 3)}/{rng.choice(PATHS)}/{rng.randint(1, 99999)} "
               f"status={rng.choice((200, 200, 200, 201, 204, 304, 400, 404, 500))} {rng.randint(2, 2400)}ms")
    elif kind == 1:
        msg = f"cache {rng.choice(('hit', 'miss', 'evict'))} key={rng.choice(PATHS)}:{rng.randint(1, 10**6)} ttl={rng.randint(5, 3600)}s"
    elif kind == 2:
        msg = f"pool {rng.choice(('db-main', 'db-replica', 'redis', 'amqp'))} size={rng.randint(4, 64)} active={rng.randint(0, 64)} waiting={rng.randint(0, 9)}"
    elif kind == 3:
        msg = f"job {rng.choice(WORDS)}-{rng.randint(100, 999)} retry {rng.randint(1, 5)}/5 after {rng.choice(ERRORS)}"
    elif kind == 4:
        msg = f"user {rng.choice(PEOPLE)}{rng.randint(1, 99)} signed in from {_ip(rng)} via {rng.choice(('sso', 'password', 'token'))}"
    elif kind == 5:
        msg = f"gc pause {rng.uniform(0.1, 80):.1f}ms heap={rng.randint(200, 4000)}MB generation={rng.randint(0, 2)}"
    elif kind == 6:
        msg = f"scheduled {rng.choice(WORDS)} {rng.choice(WORDS)} batch of {rng.randint(1, 5000)} items for shard {rng.randint(0, 31)}"
    elif kind == 7:
        msg = f"config reload: {rng.choice(WORDS)}.{rng.choice(WORDS)} = {rng.choice(('true', 'false', rng.randint(0, 900)))}"
    else:
        msg = f"health check {rng.choice(('ok', 'ok', 'ok', 'degraded'))} upstream={rng.choice(SERVICES)} latency={rng.randint(1, 300)}ms"
    return f"{stamp} {level:<5} [{svc}] {msg}"


SUBJECTS = ("The committee", "Our team", "The harbor office", "Every volunteer", "The new intern",
            "The surveyor", "Most visitors", "The archive", "The night shift", "A local baker",
            "The quarterly review", "The research group", "Her cousin", "The old ferry")
VERBS = ("reviewed", "postponed", "described", "measured", "painted", "questioned", "repaired",
         "collected", "ignored", "celebrated", "catalogued", "rebuilt", "praised", "mapped")
OBJECTS = ("the {w} report", "a {w} near the {w2}", "every {w} on the list", "the {w} budget",
           "the notes about the {w}", "two {w} samples", "the {w} by the {w2}")
TAILS = ("before the storm arrived", "without much fuss", "after a long debate", "as usual",
         "in the early afternoon", "despite the rain", "for the third time this year",
         "while the {w} was closed", "with some help from the {w} crew", "and nobody complained")


def _sentence(rng: random.Random) -> str:
    obj = rng.choice(OBJECTS).format(w=rng.choice(WORDS), w2=rng.choice(WORDS))
    tail = rng.choice(TAILS).format(w=rng.choice(WORDS))
    return f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {obj} {tail}."


def _prose_paragraph(rng: random.Random) -> str:
    return " ".join(_sentence(rng) for _ in range(rng.randint(3, 7)))


def _fact(rng: random.Random, template: int) -> tuple[str, str, str, str]:
    """(fact sentence, value, easy question, paraphrased question)."""
    letters = "ABCDEFGHJKLMNPQRSTUVWXYZ"
    if template == 0:
        n, v = rng.randint(2, 19), f"{rng.randint(1000, 9999)}-{rng.choice(('ORCA', 'LYNX', 'KITE', 'MOTH', 'WREN'))}"
        return (f"the access code for vault {n} is {v}", v,
                f"What is the access code for vault {n}?", f"Which code opens vault number {n}?")
    if template == 1:
        team, v = rng.choice(("platform", "design", "payments", "mobile")), f"{rng.choice(letters)}-{rng.randint(100, 499)}"
        return (f"the {team} sync meeting was moved to room {v}", v,
                f"Which room was the {team} sync meeting moved to?", f"Where does the {team} team's sync take place now?")
    if template == 2:
        v = f"10.{rng.randint(2, 9)}.{rng.randint(2, 9)}.{rng.randint(11, 99)}"
        return (f"the backup server's IP is {v}", v,
                "What is the backup server's IP?", "At which network address can the backup host be reached?")
    if template == 3:
        proj, v = rng.choice(("atlas", "borealis", "cinder")), f"dpl_{rng.getrandbits(36):09x}"
        return (f"the new deploy token for project {proj} is {v}", v,
                f"What is the new deploy token for project {proj}?", f"Which credential should be used now to deploy {proj}?")
    if template == 4:
        prod, v = rng.choice(("Nimbus", "Quarry", "Lagoon")), f"2026-{rng.randint(1, 12):02d}-{rng.randint(10, 28)}"
        return (f"the {prod} launch is scheduled for {v}", v,
                f"When is the {prod} launch scheduled?", f"On what date does {prod} go live?")
    if template == 5:
        name, v = rng.choice(("Marta Kowalski", "Oren Adler", "Priya Natarajan")), f"x{rng.randint(4000, 4999)}"
        return (f"{name}'s desk extension is {v}", v,
                f"What is {name}'s desk extension?", f"Which number do I dial to reach {name.split()[0]} at their desk?")
    if template == 6:
        floor, v = rng.randint(2, 9), f"{rng.choice(WORDS)}{rng.randint(10, 99)}{rng.choice(('!', '#', '?'))}{rng.choice(WORDS)}"
        return (f"the guest wifi password on floor {floor} is {v}", v,
                f"What is the guest wifi password on floor {floor}?", f"What passphrase do visitors on floor {floor} need for the wireless network?")
    if template == 7:
        order, v = rng.randint(30000, 39999), f"1Z{rng.getrandbits(40):010X}"
        return (f"the tracking number for order {order} is {v}", v,
                f"What is the tracking number for order {order}?", f"How can I follow the parcel for order {order}? Give its number.")
    if template == 8:
        v = str(rng.randint(15000, 15999))
        return (f"the staging database listens on port {v}", v,
                "Which port does the staging database listen on?", "On what port is the staging DB reachable?")
    proj, v = rng.choice(("checkout", "onboarding", "dashboard")), rng.choice(("BLUE HERON", "IRON TULIP", "SILENT OTTER", "PAPER COMET"))
    return (f"the internal codename for the {proj} redesign is {v}", v,
            f"What is the internal codename for the {proj} redesign?", f"What do insiders call the project that redesigns the {proj}?")


TEMPLATES = 10


def make_case(index: int, n: int, max_chars: int, seed: int) -> tuple[Case, str]:
    rng = random.Random(f"{seed}:{index}")
    chars = MIN_CHARS if n == 1 else round(MIN_CHARS + (max_chars - MIN_CHARS) * index / (n - 1))
    kind = "log" if (index // 2) % 2 == 0 else "prose"
    template = index % TEMPLATES
    paraphrased = index % 4 in (1, 2)  # each template once easy, once paraphrased over 20
    fact, value, easy, para = _fact(rng, template)
    for attempt in range(20):
        frng = random.Random(f"{seed}:{index}:filler:{attempt}")
        pieces: list[str] = []
        size = 0
        ts: float = 1_760_000_000 + frng.randint(0, 10**7)
        while size < chars:
            if kind == "log":
                ts += frng.uniform(0.01, 4.0)
                piece = _log_line(frng, ts)
            else:
                piece = _prose_paragraph(frng) + "\n"
            pieces.append(piece)
            size += len(piece) + 1
        position = frng.uniform(0.05, 0.95)
        at = int(len(pieces) * position)
        if kind == "log":
            ts_fact = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(1_760_000_000)) + ".000Z"
            prev = pieces[max(at - 1, 0)][:24] if pieces else ts_fact
            planted = f"{prev} INFO  [{frng.choice(('ops-notes', 'facilities', 'it-desk'))}] note: {fact}"
        else:
            planted = f"{frng.choice(('Please remember that', 'For the record,', 'One more thing:', 'As announced,'))} {fact}.\n"
        pieces.insert(at, planted)
        text = "\n".join(pieces) + "\n"
        if _norm(text).count(_norm(value)) == 1:
            return Case(index, kind, len(text), fact, value, para if paraphrased else easy, paraphrased, at / len(pieces)), text
    raise RuntimeError(f"could not plant a unique value in input {index}")


def _norm(s: str) -> str:
    return " ".join(s.lower().split())


def spread_order(n: int) -> list[int]:
    """Indices ordered so any prefix covers the size range: 0, n-1, middle, quarters, ..."""
    order: list[int] = []
    step = n
    while len(order) < n:
        for i in range(0, n, max(step, 1)):
            if i not in order:
                order.append(i)
        if (n - 1) not in order:
            order.append(n - 1)
        step //= 2
        if step == 0:
            order += [i for i in range(n) if i not in order]
    return order


# --------------------------------------------------------------------------------------------
# Runs


def code_version(root: Path | None = None) -> str:
    """A short hash of the rlm_cli sources, so results from different code are not mixed silently."""
    if root is None:
        import rlm_cli

        root = Path(rlm_cli.__file__).parent
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:10]


def snapshot(out: Path) -> Path:
    """Copy the rlm_cli package as it is now into OUT/snapshot-<hash>/, so edits made to the
    working tree while the benchmark runs do not change the code under test half-way."""
    import rlm_cli

    package = Path(rlm_cli.__file__).parent
    dest = out / f"snapshot-{code_version(package)}"
    if not (dest / "rlm_cli").exists():
        tmp = out / f".snapshot-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(package, tmp / "rlm_cli", ignore=shutil.ignore_patterns("__pycache__"))
        tmp.rename(dest)
    return dest


def run_one(case: Case, source: Path, profile: str, args: argparse.Namespace, trace: Path) -> dict:
    code_root = args.code_dir / "rlm_cli" if args.code_dir else None
    code_at_start = code_version(code_root)
    started_at = time.strftime("%H:%M:%S")
    env = {**os.environ, "RLM_PROMPT_PROFILE": profile}
    env.pop("RLM_MODEL", None)
    if args.code_dir:  # the snapshot first on the path; cwd away from the repository
        env["PYTHONPATH"] = os.pathsep.join([str(args.code_dir), *filter(None, [env.get("PYTHONPATH")])])
    cmd = [sys.executable, "-m", "rlm_cli", "ask", str(source), case.question, "--json",
           "--max-iterations", str(args.max_iterations), "--timeout", str(args.timeout), "--trace", str(trace)]
    started = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=args.timeout + 180,
                              cwd=args.out if args.code_dir else None)
        code, out, err = proc.returncode, proc.stdout, proc.stderr
    except subprocess.TimeoutExpired as exc:
        code, out, err = -9, "", (exc.stderr or b"").decode() if isinstance(exc.stderr, bytes) else (exc.stderr or "")
    wall = time.perf_counter() - started
    try:
        data = json.loads(out)
    except json.JSONDecodeError:
        data = {}
    answer = data.get("answer") or ""
    ready = READY.search(err)
    return {
        "index": case.index, "profile": profile, "chars": case.chars, "kind": case.kind,
        "paraphrased": case.paraphrased, "position": round(case.position, 3),
        "question": case.question, "value": case.value,
        "right": _norm(case.value) in _norm(answer), "answer": answer[:300],
        "wall_s": round(wall, 2), "duration_s": data.get("duration_s"),
        "server_start_s": float(ready.group(1)) if ready else None,
        "iterations": data.get("iterations"), "subcalls": data.get("subcalls"),
        "status": data.get("status"), "exit": code, "error": (data.get("error") or "")[:200] or None,
        "trace_file": data.get("trace_file") or str(trace),
        "stderr_tail": None if data else err[-500:],
        "started_at": started_at, "code": code_at_start if code_version(code_root) == code_at_start else "changed-during-run",
    }


def server_probe() -> dict[str, float]:
    """Start->healthy of one LocalServer with the model evicted from the page cache, then warm."""
    from rlm_cli.local import LocalServer, parse_local_model

    path = parse_local_model("local").resolve_path(lambda done, total: None)
    times: dict[str, float] = {}
    for label in ("cold", "warm"):
        if label == "cold":
            fd = os.open(path, os.O_RDONLY)
            try:  # only this file's pages; a server mapping it elsewhere keeps them resident
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)
        t0 = time.perf_counter()
        with LocalServer(path):
            times[label] = time.perf_counter() - t0
    return times


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (p90 of 20 values is the 18th smallest)."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 100))
    return ordered[int(rank) - 1]


def line(r: dict) -> str:
    return (f"{r['profile']:<8} #{r['index']:02d} {r['kind']:<5} {r['chars']:>7,} ch "
            f"{'para' if r['paraphrased'] else 'easy'}  {'RIGHT' if r['right'] else 'wrong'}  "
            f"wall {r['wall_s']:6.1f} s  it {r['iterations'] if r['iterations'] is not None else '-':>2}  "
            f"sub {r['subcalls'] if r['subcalls'] is not None else '-':>3}  exit {r['exit']}  "
            f"server {r['server_start_s'] if r['server_start_s'] is not None else '-'} s  "
            f"answer={r['answer'][:60]!r}")


def summary(results: list[dict], profiles: list[str], probe: dict | None) -> None:
    print("\n== summary ==")
    versions = sorted({r.get("code", "?") for r in results})
    if len(versions) > 1:
        print(f"WARNING: results come from {len(versions)} versions of rlm_cli: {', '.join(versions)}")
    if probe:
        print(f"server start->healthy (LocalServer direct): cold {probe['cold']:.1f} s, warm {probe['warm']:.1f} s")
    for profile in profiles:
        rs = [r for r in results if r["profile"] == profile]
        if not rs:
            continue
        walls = [r["wall_s"] for r in rs]
        starts = [r["server_start_s"] for r in rs if r["server_start_s"] is not None]
        right = sum(r["right"] for r in rs)
        easy = [r for r in rs if not r["paraphrased"]]
        para = [r for r in rs if r["paraphrased"]]
        exits: dict[int, int] = {}
        for r in rs:
            exits[r["exit"]] = exits.get(r["exit"], 0) + 1
        print(f"{profile:<8} accuracy {right}/{len(rs)}  (easy {sum(r['right'] for r in easy)}/{len(easy)}, "
              f"paraphrased {sum(r['right'] for r in para)}/{len(para)})  "
              f"wall median {statistics.median(walls):.1f} s  p90 {percentile(walls, 90):.1f} s  "
              f"max {max(walls):.1f} s")
        print(f"{'':<8} iterations median {statistics.median([r['iterations'] or 0 for r in rs]):g}  "
              f"sub-calls median {statistics.median([r['subcalls'] or 0 for r in rs]):g}  "
              f"exit codes {dict(sorted(exits.items()))}  "
              + (f"server start in run: median {statistics.median(starts):.1f} s, max {max(starts):.1f} s"
                 if starts else ""))
    both: dict[int, dict[str, bool]] = {}
    for r in results:
        both.setdefault(r["index"], {})[r["profile"]] = r["right"]
    paired = [v for v in both.values() if len(v) == len(profiles)]
    if len(profiles) == 2 and paired:
        a, b = profiles
        print(f"paired inputs {len(paired)}: both right {sum(v[a] and v[b] for v in paired)}, "
              f"only {a} {sum(v[a] and not v[b] for v in paired)}, only {b} {sum(v[b] and not v[a] for v in paired)}, "
              f"both wrong {sum(not v[a] and not v[b] for v in paired)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20)
    parser.add_argument("--profiles", default="small,frontier")
    parser.add_argument("--max-chars", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--max-iterations", type=int, default=6)
    parser.add_argument("--timeout", type=float, default=300)
    parser.add_argument("--limit", type=int, default=None, help="run only the first K inputs of the spread order")
    parser.add_argument("--out", type=Path, default=Path("/tmp/rlm_bench_local"))
    parser.add_argument("--results", type=Path, default=None, help="JSONL of results (default OUT/results-...jsonl)")
    parser.add_argument("--no-cold", action="store_true", help="skip the direct cold/warm server probe")
    parser.add_argument("--summary-only", action="store_true")
    parser.add_argument("--live-code", action="store_true",
                        help="run the installed rlm_cli as it is, not a snapshot copied at start")
    args = parser.parse_args()
    args.code_dir = None
    profiles = [p.strip() for p in args.profiles.split(",") if p.strip()]
    args.out.mkdir(parents=True, exist_ok=True)
    if not args.summary_only and not args.live_code:
        args.code_dir = snapshot(args.out)
        print(f"code under test: {args.code_dir}", flush=True)
    stem = f"results-n{args.n}-c{args.max_chars}-s{args.seed}"
    if args.results:
        results_path = args.results
    elif args.summary_only:  # the newest results of these settings
        found = sorted(args.out.glob(f"{stem}*.jsonl"), key=lambda p: p.stat().st_mtime)
        results_path = found[-1] if found else args.out / f"{stem}.jsonl"
    else:
        version = args.code_dir.name.removeprefix("snapshot-") if args.code_dir else "live"
        results_path = args.out / f"{stem}-{version}.jsonl"
    print(f"results: {results_path}", flush=True)
    done = [json.loads(x) for x in results_path.read_text().splitlines()] if results_path.exists() else []
    probe_path = results_path.with_suffix(".probe.json")
    probe = json.loads(probe_path.read_text()) if probe_path.exists() else None

    if not args.summary_only:
        if probe is None and not args.no_cold:
            probe = server_probe()
            probe_path.write_text(json.dumps(probe))
            print(f"server start->healthy (LocalServer direct): cold {probe['cold']:.1f} s, warm {probe['warm']:.1f} s", flush=True)
        seen = {(r["index"], r["profile"]) for r in done}
        order = spread_order(args.n)[: args.limit]
        bench_start = time.perf_counter()
        for index in order:
            case, text = make_case(index, args.n, args.max_chars, args.seed)
            source = args.out / f"input-s{args.seed}-{index:02d}.txt"
            source.write_text(text)
            for profile in profiles:
                if (index, profile) in seen:
                    continue
                trace = args.out / f"trace-s{args.seed}-{index:02d}-{profile}.jsonl"
                result = run_one(case, source, profile, args, trace)
                done.append(result)
                with results_path.open("a") as f:
                    f.write(json.dumps(result) + "\n")
                print(line(result), flush=True)
        print(f"(this invocation: {time.perf_counter() - bench_start:.0f} s)")
    else:
        for r in sorted(done, key=lambda r: (r["index"], r["profile"])):
            print(line(r))
    summary(done, profiles, probe)


if __name__ == "__main__":
    main()
