"""keel's bytecode worker: compiles the files keel sends, one reply each.

Started by keel as ``python -I -S -B compile_worker.py MODE`` in a private
directory, with every PYTHON* variable removed. Protocol (all lengths are
4-byte big-endian):

- first, unasked, one reply: ``keel-bytecode 1 <magic hex> <cache tag>``;
- then per request, four length-prefixed fields: source path, bytecode
  path, the path the code object names (the source's final place), and
  the path of bytecode compiled earlier from the same source (empty when
  there is none), as raw bytes (``os.fsdecode``: any file name works).
  Earlier bytecode is relocated: its header kept, its code objects renamed
  to the final place (what importlib does when it loads bytecode whose
  source moved); if it does not load, the source is compiled;
- per request one reply: a status byte (0 compiled, 1 not compilable,
  2 cannot write or read) and a length-prefixed UTF-8 message.

End of input (keel closed the pipe, or died) ends the worker.
"""

import _imp
import importlib.util
import marshal
import os
import py_compile
import struct
import sys

COMPILED, NOT_COMPILABLE, FAILED = 0, 1, 2


def main():
    read = sys.stdin.buffer.read
    out = sys.stdout.buffer

    def reply(status, text):
        data = text.encode("utf-8", "replace")
        out.write(struct.pack(">BI", status, len(data)) + data)
        out.flush()

    def field():
        header = read(4)
        if len(header) < 4:
            return None
        (length,) = struct.unpack(">I", header)
        data = read(length)
        if len(data) < length:
            return None
        return os.fsdecode(data)

    mode = py_compile.PycInvalidationMode[sys.argv[1]]
    reply(
        COMPILED,
        "keel-bytecode 1 %s %s"
        % (importlib.util.MAGIC_NUMBER.hex(), sys.implementation.cache_tag),
    )
    while True:
        source, cfile, dfile, earlier = field(), field(), field(), field()
        if source is None or cfile is None or dfile is None or earlier is None:
            return
        try:
            if earlier and relocate(earlier, cfile, dfile):
                reply(COMPILED, "")
                continue
        except OSError as error:
            reply(FAILED, str(error))
            continue
        try:
            py_compile.compile(
                source,
                cfile=cfile,
                dfile=dfile,
                doraise=True,
                optimize=0,
                invalidation_mode=mode,
            )
        except py_compile.PyCompileError as error:
            reply(NOT_COMPILABLE, error.msg)
        except OSError as error:
            reply(FAILED, str(error))
        else:
            reply(COMPILED, "")


def relocate(earlier, cfile, dfile):
    """Writes ``earlier``'s bytecode to ``cfile``, naming ``dfile``;
    False when it does not load."""
    with open(earlier, "rb") as f:
        data = f.read()
    try:
        code = marshal.loads(data[16:])
    except (EOFError, ValueError, TypeError):
        return False
    if data[:4] != importlib.util.MAGIC_NUMBER or not hasattr(code, "co_filename"):
        return False
    _imp._fix_co_filename(code, dfile)
    directory = os.path.dirname(cfile)
    if directory:
        os.makedirs(directory, exist_ok=True)
    with open(cfile, "wb") as f:
        f.write(data[:16] + marshal.dumps(code))
    return True


main()
