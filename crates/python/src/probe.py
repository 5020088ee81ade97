# keel's interpreter probe (crate keel-python, src/probe.py).
#
# Run as:  <python> -I -B -c "<this source>" OUTFILE
#
# Writes one JSON object to OUTFILE (never to stdout, which `.pth` files and
# `sitecustomize` may write to). It must parse on Python 2.7 and run on 3.6+
# (an older Python reports "unsupported" rather than crashing), so: no
# f-strings, no walrus, and no `packaging` import. keel computes the wheel
# tags from these facts in Rust (src/tags.rs, src/platforms.rs).
#
# Bump PROBE_VERSION in src/probe.rs whenever the output changes meaning.
import json
import os
import platform
import re
import struct
import sys
import sysconfig

PROBE_VERSION = 1
MINIMUM = (3, 7)


def _fmt_version(info):
    # PEP 508 `implementation_version`: format_full_version().
    version = "%d.%d.%d" % (info.major, info.minor, info.micro)
    if info.releaselevel != "final":
        version += info.releaselevel[0] + str(info.serial)
    return version


def _elf_info(path):
    # The ELF header of sys.executable, as packaging/_elffile.py reads it:
    # class, data encoding, e_machine, e_flags and the PT_INTERP loader.
    try:
        with open(path, "rb") as f:
            ident = f.read(16)
            if len(ident) != 16 or ident[:4] != b"\x7fELF":
                return None
            cls, enc = bytearray(ident[4:6])
            fmts = {
                (1, 1): ("<HHIIIIIHHH", "<IIIIIIII", (0, 1, 4)),
                (1, 2): (">HHIIIIIHHH", ">IIIIIIII", (0, 1, 4)),
                (2, 1): ("<HHIQQQIHHH", "<IIQQQQQQ", (0, 2, 5)),
                (2, 2): (">HHIQQQIHHH", ">IIQQQQQQ", (0, 2, 5)),
            }.get((cls, enc))
            if fmts is None:
                return None
            e_fmt, p_fmt, p_idx = fmts
            hdr = struct.unpack(e_fmt, f.read(struct.calcsize(e_fmt)))
            machine, phoff, flags, phentsize, phnum = hdr[1], hdr[4], hdr[6], hdr[8], hdr[9]
            interp = None
            for i in range(phnum):
                f.seek(phoff + phentsize * i)
                raw = f.read(struct.calcsize(p_fmt))
                if len(raw) != struct.calcsize(p_fmt):
                    continue
                ph = struct.unpack(p_fmt, raw)
                if ph[p_idx[0]] != 3:  # PT_INTERP
                    continue
                f.seek(ph[p_idx[1]])
                interp = os.fsdecode(f.read(ph[p_idx[2]])).strip("\0")
                break
            return {"class": cls, "data": enc, "machine": machine, "flags": flags,
                    "interpreter": interp}
    except (OSError, IOError, ValueError, struct.error):
        return None


def _glibc():
    # packaging/_manylinux.py: os.confstr first, then ctypes.
    try:
        s = os.confstr("CS_GNU_LIBC_VERSION")  # "glibc 2.36"
        if s:
            parts = s.rsplit()
            if len(parts) == 2:
                return parts[1], "confstr"
    except (AttributeError, OSError, ValueError):
        pass
    try:
        import ctypes
        try:
            ns = ctypes.CDLL(None)
        except OSError:
            return None, None
        try:
            fn = ns.gnu_get_libc_version
        except AttributeError:
            return None, None
        fn.restype = ctypes.c_char_p
        v = fn()
        if isinstance(v, bytes):
            v = v.decode("ascii")
        return v, "ctypes"
    except ImportError:
        return None, None


def _musl(elf):
    # packaging/_musllinux.py: run the PT_INTERP loader, parse its stderr.
    ld = elf and elf.get("interpreter")
    if not ld or "musl" not in ld:
        return None
    import subprocess
    try:
        p = subprocess.Popen([ld], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE)
        err = p.communicate()[1].decode("utf-8", "replace")
    except OSError:
        return None
    lines = [l.strip() for l in err.splitlines() if l.strip()]
    if len(lines) < 2 or lines[0][:4] != "musl":
        return None
    m = re.match(r"Version (\d+)\.(\d+)", lines[1])
    return m and (m.group(1) + "." + m.group(2))


def _linux_archs():
    # packaging.tags._linux_platforms: the architectures tags are made for.
    linux = sysconfig.get_platform().replace(".", "_").replace("-", "_").replace(" ", "_")
    if not linux.startswith("linux_"):
        return []
    if struct.calcsize("P") == 4:
        linux = {"linux_x86_64": "linux_i686", "linux_aarch64": "linux_armv8l"}.get(linux, linux)
    arch = linux.split("_", 1)[1]
    return ["armv8l", "armv7l"] if arch == "armv8l" else [arch]


def _manylinux_hook(glibc):
    # PEP 600 `_manylinux` module: which manylinux_X_Y_arch tags it vetoes,
    # asked exactly as packaging/_manylinux.py `_is_compatible` asks, for every
    # glibc version up to the running one (keel applies the floor itself).
    try:
        import _manylinux
    except ImportError:
        return False, []
    except Exception:  # a broken hook module: packaging would crash
        return True, []
    m = glibc and re.match(r"([0-9]+)\.([0-9]+)", glibc)
    if not m:
        return True, []
    cur = (int(m.group(1)), int(m.group(2)))
    legacy = {(2, 5): "manylinux1_compatible", (2, 12): "manylinux2010_compatible",
              (2, 17): "manylinux2014_compatible"}
    vetoed = []
    for arch in _linux_archs():
        for major in range(cur[0], 1, -1):
            top = cur[1] if major == cur[0] else 50
            for minor in range(top, -1, -1):
                try:
                    if hasattr(_manylinux, "manylinux_compatible"):
                        ok = _manylinux.manylinux_compatible(major, minor, arch)
                        ok = True if ok is None else bool(ok)
                    elif (major, minor) in legacy and hasattr(_manylinux, legacy[(major, minor)]):
                        ok = bool(getattr(_manylinux, legacy[(major, minor)]))
                    else:
                        ok = True
                except Exception:
                    ok = True
                if not ok:
                    vetoed.append("manylinux_%d_%d_%s" % (major, minor, arch))
    return True, vetoed


def _config_vars():
    cv = sysconfig.get_config_var
    names = ("EXT_SUFFIX", "SOABI", "MULTIARCH", "py_version_nodot", "Py_DEBUG",
             "Py_GIL_DISABLED", "WITH_PYMALLOC", "Py_ENABLE_SHARED", "LDVERSION", "abiflags")
    out = {}
    for name in names:
        value = cv(name)
        if not (value is None or isinstance(value, (int, str))):
            value = str(value)
        out[name] = value
    return out


def main():
    if sys.version_info < MINIMUM:
        return {"result": "error", "kind": "unsupported_python", "probe_version": PROBE_VERSION,
                "python_full_version": platform.python_version()}
    import importlib.machinery
    import importlib.util

    impl = sys.implementation
    markers = {
        "implementation_name": impl.name,
        "implementation_version": _fmt_version(impl.version),
        "os_name": os.name,
        "platform_machine": platform.machine(),
        "platform_python_implementation": platform.python_implementation(),
        "platform_release": platform.release(),
        "platform_system": platform.system(),
        "platform_version": platform.version(),
        "python_full_version": platform.python_version(),
        "python_version": ".".join(platform.python_version_tuple()[:2]),
        "sys_platform": sys.platform,
    }
    get_scheme = getattr(sysconfig, "get_default_scheme", None) or \
        getattr(sysconfig, "_get_default_scheme", None)
    linux = sys.platform.startswith("linux")
    elf = _elf_info(sys.executable) if linux else None
    glibc, glibc_src = _glibc() if linux else (None, None)
    # packaging checks both libcs independently.
    musl = _musl(elf) if linux else None
    hook, vetoed = _manylinux_hook(glibc)
    return {
        "result": "success",
        "probe_version": PROBE_VERSION,
        "markers": markers,
        "version_info": list(sys.version_info[:3]) + [sys.version_info.releaselevel,
                                                      sys.version_info.serial],
        "cache_tag": impl.cache_tag,
        "magic_number": importlib.util.MAGIC_NUMBER.hex(),
        "executable": sys.executable,
        "prefix": sys.prefix,
        "base_prefix": sys.base_prefix,
        "abiflags": getattr(sys, "abiflags", None),
        "pointer_bits": struct.calcsize("P") * 8,
        "sysconfig_platform": sysconfig.get_platform(),
        "config_vars": _config_vars(),
        "extension_suffixes": importlib.machinery.EXTENSION_SUFFIXES,
        "has_gettotalrefcount": hasattr(sys, "gettotalrefcount"),
        "scheme_name": get_scheme() if get_scheme else None,
        "paths": sysconfig.get_paths(),
        "sys_path": sys.path,
        "libc": {"glibc": glibc, "glibc_source": glibc_src, "musl": musl},
        "elf": elf,
        "manylinux_hook_module": hook,
        "manylinux_vetoed": vetoed,
    }


if __name__ == "__main__":
    _out = json.dumps(main(), sort_keys=True)
    with open(sys.argv[1], "w") as _f:
        _f.write(_out)
