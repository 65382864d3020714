"""Compile sysvmq's C for every platform the README names, with the libc headers zig bundles.

For each target: the C that build_ffi.py's ffibuilder emits (what setuptools compiles into
the extension) and build_ffi.SOURCES (sysvmq/_helpers.c), with -Wall -Wextra -Werror and
build_ffi.DEFINE_MACROS, against this Python's headers behind a pyconfig.h shim made for the
target: its C type sizes, measured by the compiler for that target, and the feature macros
CPython's configure defines there (none of _XOPEN_SOURCE and _POSIX_C_SOURCE on macOS;
_BSD_SOURCE on OpenBSD). Then what the compiler sees on that target: the HAS_* flags, the
sizes of long and key_t, the byte order, and whether receive_many writes types in place at
any alignment. A refused target (x32) must fail with its #error.

Nothing is linked or run: that is .ci/c-tests (qemu-user) and the i386 chroot.

Usage: python .ci/cross_compile.py [TARGET ...]   (needs cffi and ziglang, from PyPI)
Exits 1 if any target fails, naming it, the file, and the compiler's first errors.
"""

import pathlib
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

REPO = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import build_ffi  # noqa: E402  (after the path, on purpose)


class Target(NamedTuple):
    triple: str  # zig's -target
    what: str


TARGETS = [
    Target("x86_64-linux-gnu", "Linux x86_64, glibc (manylinux)"),
    Target("aarch64-linux-gnu", "Linux aarch64, glibc (manylinux)"),
    Target("x86-linux-gnu", "Linux i386, glibc: 32-bit long"),
    Target("arm-linux-gnueabihf", "Linux armv7, glibc: 32-bit long, strict alignment"),
    Target("x86_64-linux-musl", "Linux x86_64, musl (musllinux)"),
    Target("aarch64-linux-musl", "Linux aarch64, musl (musllinux)"),
    Target("s390x-linux-gnu", "Linux s390x, glibc: big-endian"),
    Target("powerpc64-linux-musl", "Linux ppc64, musl: big-endian"),
    Target("mips-linux-musleabi", "Linux mips, musl: big-endian, 32-bit, strict alignment"),
    Target("riscv64-linux-gnu", "Linux riscv64, glibc"),
    Target("x86_64-macos-none", "macOS x86_64"),
    Target("aarch64-macos-none", "macOS arm64"),
    Target("x86_64-freebsd-none", "FreeBSD amd64"),
    Target("aarch64-freebsd-none", "FreeBSD arm64"),
    Target("x86_64-netbsd-none", "NetBSD amd64"),
    Target("x86_64-openbsd-none", "OpenBSD amd64"),
]

# Targets _helpers.c must refuse, and the words its #error says.
REFUSED = {
    "x86_64-linux-gnux32": "x32 is not supported",
    "x86_64-linux-muslx32": "x32 is not supported",
}

# Added to the host's pyconfig.h, per OS, as CPython's configure would have it there.
FEATURES = {
    # Darwin 6 and later: configure sets define_xopen_source=no.
    "macos": "#undef _XOPEN_SOURCE\n#undef _XOPEN_SOURCE_EXTENDED\n#undef _POSIX_C_SOURCE\n",
    # OpenBSD hides its own names (alloca, for one) under _XOPEN_SOURCE unless told.
    "openbsd": "#define _BSD_SOURCE 1\n",
}

# The C type behind each SIZEOF_ and ALIGNOF_ of pyconfig.h; others are Python's own.
CTYPES = {
    "DOUBLE": "double",
    "FLOAT": "float",
    "FPOS_T": "fpos_t",
    "INT": "int",
    "LONG": "long",
    "LONG_DOUBLE": "long double",
    "LONG_LONG": "long long",
    "OFF_T": "off_t",
    "PID_T": "pid_t",
    "PTHREAD_KEY_T": "pthread_key_t",
    "PTHREAD_T": "pthread_t",
    "SHORT": "short",
    "SIZE_T": "size_t",
    "TIME_T": "time_t",
    "UINTPTR_T": "uintptr_t",
    "VOID_P": "void *",
    "WCHAR_T": "wchar_t",
    "_BOOL": "_Bool",
    "MAX_ALIGN_T": "max_align_t",
}

WARNINGS = ["-Wall", "-Wextra", "-Werror"]


class Failure(Exception):
    """A target that did not compile: what was compiled, and what the compiler said."""


def zig_cc(target: str, args: Sequence[str]) -> "subprocess.CompletedProcess[str]":
    cmd = [sys.executable, "-m", "ziglang", "cc", "-target", target, *args]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)


def compile_or_fail(target: str, what: str, args: Sequence[str]) -> str:
    proc = zig_cc(target, args)
    if proc.returncode != 0:
        lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
        first = [ln for ln in lines if "error" in ln][:8] or lines[:8]
        raise Failure(f"{what}: " + "\n    ".join(first))
    return proc.stdout


def defines() -> List[str]:
    return [f"-D{name}" if value is None else f"-D{name}={value}" for name, value in build_ffi.DEFINE_MACROS]


def os_of(target: str) -> str:
    return target.split("-")[1]


def probe_values(
    target: str, source: str, names: Sequence[Tuple[str, str]], args: Sequence[str], work: pathlib.Path
) -> Dict[str, int]:
    """The values (0..255) of C constant expressions on the target, read from the assembly of a byte each."""
    body = "".join(f"const unsigned char sysvmq_probe_{name} = (unsigned char)({expr});\n" for name, expr in names)
    path = work / "probe.c"
    path.write_text(source + "\n" + body)
    compile_or_fail(target, "probe", ["-S", "-O0", "-g0", *args, str(path), "-o", str(work / "probe.s")])
    asm = (work / "probe.s").read_text()
    found = dict(re.findall(r"^_?sysvmq_probe_(\w+):\s*\n\s*\.byte\s+(\d+)", asm, re.M))
    missing = [name for name, _ in names if name not in found]
    if missing:
        raise Failure(f"probe: no value found in the assembly for {', '.join(missing)}")
    return {name: int(found[name]) for name, _ in names}


def python_include(target: str, work: pathlib.Path) -> pathlib.Path:
    """This Python's include folder, its pyconfig.h wrapped for the target."""
    host = pathlib.Path(sysconfig.get_paths()["include"])
    inc = work / f"python-{target}"
    inc.mkdir()
    for entry in host.iterdir():
        if entry.name != "pyconfig.h":
            (inc / entry.name).symlink_to(entry)
    (inc / "pyconfig-host.h").symlink_to(host / "pyconfig.h")
    features = f'#include "pyconfig-host.h"\n{FEATURES.get(os_of(target), "")}'
    # The sizes pyconfig.h states, measured for the target under the same feature macros.
    host_sizes = re.findall(r"^#define ((?:SIZEOF|ALIGNOF)_(\w+)) \d+", (host / "pyconfig.h").read_text(), re.M)
    wanted = [(macro, kind_type) for macro, kind_type in host_sizes if kind_type in CTYPES]
    source = (
        features
        + "#include <stddef.h>\n#include <stdint.h>\n#include <stdio.h>\n#include <time.h>\n"
        + "#include <wchar.h>\n#include <pthread.h>\n#include <sys/types.h>\n"
    )
    exprs = [
        (macro, f"{'sizeof' if macro.startswith('SIZEOF') else '_Alignof'}({CTYPES[ctype]})") for macro, ctype in wanted
    ]
    (inc / "pyconfig.h").write_text(features)
    sizes = probe_values(target, source, exprs, ["-I", str(inc)], work)
    shim = [f"/* pyconfig.h for {target}: the host's, with the target's feature macros and sizes. */", features]
    for macro, value in sorted(sizes.items()):
        shim.append(f"#undef {macro}\n#define {macro} {value}")
    (inc / "pyconfig.h").write_text("\n".join(shim) + "\n")
    return inc


def what_it_sees(target: str, work: pathlib.Path) -> Dict[str, int]:
    """HAS_* and the facts that matter, as _helpers.c's own compilation sees them."""
    args = [*defines(), "-I", "sysvmq"]
    macros = compile_or_fail(target, "sysvmq/_helpers.c -dM -E", ["-dM", "-E", *args, "sysvmq/_helpers.c"])
    has = sorted(set(re.findall(r"^#define (HAS_\w+) ", macros, re.M)))
    exprs = [(name, name) for name in has] + [
        ("long", "sizeof(long)"),
        ("key_t", "sizeof(key_t)"),
        ("time_t", "sizeof(time_t)"),
        ("big_endian", "__BYTE_ORDER__ == __ORDER_BIG_ENDIAN__"),
        ("in_place", "SYSVMQ_ANY_ALIGNMENT"),
    ]
    source = f'#include "{REPO / "sysvmq" / "_helpers.c"}"\n'
    return probe_values(target, source, exprs, args, work)


def check(target: str, generated: pathlib.Path, work: pathlib.Path) -> Dict[str, int]:
    inc = python_include(target, work)
    common = ["-c", "-O2", "-fPIC", *WARNINGS, *defines()]
    for d in build_ffi.INCLUDE_DIRS:
        common += ["-I", d]
    # Objects into work: zig's cc given -o /dev/null writes NAME.o into the current folder.
    compile_or_fail(target, generated.name, [*common, "-I", str(inc), str(generated), "-o", str(work / "module.o")])
    for source in build_ffi.SOURCES:
        compile_or_fail(target, source, [*common, source, "-o", str(work / "source.o")])
    return what_it_sees(target, work)


def refused(target: str, words: str, work: pathlib.Path) -> Optional[str]:
    """None if _helpers.c refuses the target with its words; else what went wrong."""
    args = ["-c", *WARNINGS, *defines(), "-I", "sysvmq", "sysvmq/_helpers.c", "-o", str(work / "refused.o")]
    proc = zig_cc(target, args)
    if proc.returncode == 0:
        return "compiled, and should have been refused"
    if words not in proc.stderr:
        return "failed, but not with its #error: " + proc.stderr.strip().splitlines()[0]
    return None


def main(argv: Sequence[str]) -> int:
    chosen = [t for t in TARGETS if not argv or t.triple in argv]
    unknown = set(argv) - {t.triple for t in TARGETS} - set(REFUSED)
    if unknown:
        print(f"unknown targets: {', '.join(sorted(unknown))}", file=sys.stderr)
        return 2
    zig = subprocess.run([sys.executable, "-m", "ziglang", "version"], capture_output=True, text=True, check=True)
    print(f"zig {zig.stdout.strip()}; Python headers of {sysconfig.get_paths()['include']}")
    print(f"flags: -O2 -fPIC {' '.join(WARNINGS)} {' '.join(defines())}")
    failed: List[Tuple[str, str]] = []
    rows: List[Tuple[Target, Dict[str, int], float]] = []
    with tempfile.TemporaryDirectory(prefix="sysvmq-cross-") as tmp:
        work = pathlib.Path(tmp)
        generated = work / "_sysvmq_cffi.c"
        build_ffi.ffibuilder.emit_c_code(str(generated))
        for t in chosen:
            started = time.monotonic()
            target_work = work / t.triple
            target_work.mkdir()
            try:
                rows.append((t, check(t.triple, generated, target_work), time.monotonic() - started))
            except Failure as exc:
                failed.append((t.triple, str(exc)))
                print(f"FAILED {t.triple} ({t.what}): {exc}", flush=True)
            shutil.rmtree(target_work)
        refusals: List[Tuple[str, Optional[str]]] = [
            (triple, refused(triple, words, work)) for triple, words in REFUSED.items() if not argv or triple in argv
        ]
    has = sorted({k for _, seen, _ in rows for k in seen if k.startswith("HAS_")})
    head = f"{'target':<22} {'long':>4} {'key_t':>5} {'time_t':>6} {'endian':>6} {'in place':>8}  "
    print()
    print(head + "  ".join(h[4:] for h in has) + "   what it stands for")
    for t, seen, took in rows:
        cells = [
            f"{t.triple:<22}",
            f"{seen.get('long', '?'):>4}",
            f"{seen.get('key_t', '?'):>5}",
            f"{seen.get('time_t', '?'):>6}",
            f"{'big' if seen.get('big_endian') else 'little':>6}",
            f"{'yes' if seen.get('in_place') else 'copy':>8} ",
        ]
        flags = "  ".join(f"{seen.get(h, '?')!s:>{len(h) - 4}}" for h in has)
        print(" ".join(cells) + " " + flags + f"   {t.what} ({took:.1f} s)")
    for triple, problem in refusals:
        if problem is None:
            print(f"{triple:<22} refused at compile time, as it must be: {REFUSED[triple]}")
        else:
            failed.append((triple, problem))
            print(f"FAILED {triple}: {problem}")
    if failed:
        print(f"\ncross-compile: {len(failed)} target(s) failed: {', '.join(t for t, _ in failed)}")
        for triple, why in failed:
            print(f"  {triple}: {why}")
        return 1
    print(f"\ncross-compile: {len(rows)} targets compiled, {len(refusals)} refused as they must be")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
