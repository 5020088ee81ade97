"""Independent check of an installed environment against its RECORD files.

Written in Python on purpose: it shares no code with keel. For every
`.dist-info` in site-packages it checks that each RECORD row with a hash
names an existing regular file of that size and hash, and it lists the files
under the environment that no RECORD claims (ignoring what the venv itself
and Python create). Prints a JSON report; exit status 0 when all is well.
"""
import base64, csv, hashlib, json, os, sys

venv = os.path.abspath(sys.argv[1])
site = None
lib = os.path.join(venv, "lib")
for name in os.listdir(lib):
    candidate = os.path.join(lib, name, "site-packages")
    if os.path.isdir(candidate):
        site = candidate
problems, claimed, dists = [], set(), []
for entry in sorted(os.listdir(site)):
    if not entry.endswith(".dist-info"):
        continue
    dist_info = os.path.join(site, entry)
    record = os.path.join(dist_info, "RECORD")
    if not os.path.isfile(record):
        problems.append(f"{entry}: no RECORD")
        continue
    dists.append(entry)
    with open(record, newline="") as f:
        for row in csv.reader(f):
            if not row:
                continue
            path, digest, size = row
            full = os.path.normpath(os.path.join(site, path))
            claimed.add(full)
            if not digest:
                if not path.endswith("/RECORD"):
                    problems.append(f"{entry}: {path}: no hash")
                continue
            if not os.path.isfile(full) or os.path.islink(full):
                problems.append(f"{entry}: {path}: missing or not a regular file")
                continue
            algorithm, expected = digest.split("=", 1)
            with open(full, "rb") as g:
                data = g.read()
            actual = base64.urlsafe_b64encode(hashlib.new(algorithm, data).digest()).rstrip(b"=").decode()
            if actual != expected.rstrip("="):
                problems.append(f"{entry}: {path}: hash mismatch")
            if size and int(size) != len(data):
                problems.append(f"{entry}: {path}: size {len(data)} != {size}")
# Files nobody claims, outside what venv/Python/keel themselves own.
# (`.gitignore`: Python 3.13's venv writes one at the root.)
ignored_top = {"pyvenv.cfg", ".keel", "lib64", ".gitignore"}
ignored_bin = {"python", "python3", "activate", "activate.csh", "activate.fish", "Activate.ps1"}
unclaimed = []
for root, dirs, files in os.walk(venv):
    rel_root = os.path.relpath(root, venv)
    if rel_root == "." :
        dirs[:] = [d for d in dirs if d not in ignored_top]
    dirs[:] = [d for d in dirs if d != "__pycache__"]
    for name in files:
        full = os.path.join(root, name)
        rel = os.path.relpath(full, venv)
        if rel in ignored_top:
            continue
        if rel_root == "bin" and (name in ignored_bin or name.startswith("python3.")):
            continue
        if full not in claimed:
            unclaimed.append(rel)
report = {"distributions": dists, "problems": problems, "unclaimed": sorted(unclaimed)}
print(json.dumps(report, indent=1))
sys.exit(1 if problems or unclaimed else 0)
