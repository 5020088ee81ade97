//! The platform tags an interpreter supports, best first: the innermost loop
//! of every tag list (`packaging.tags.platform_tags`).

use std::collections::HashSet;

use crate::interpreter::{ElfHeader, Interpreter};
use crate::tags::TagOrder;

/// Architectures with manylinux wheels (`_manylinux._ALLOWED_ARCHS`; armv7l
/// and i686 are checked on the ELF header instead).
const MANYLINUX_ARCHS: [&str; 7] = [
    "x86_64",
    "aarch64",
    "ppc64",
    "ppc64le",
    "s390x",
    "loongarch64",
    "riscv64",
];

/// The legacy names of three PEP 600 versions (PEP 513, PEP 571, PEP 599),
/// emitted right after their `manylinux_X_Y` twin.
const LEGACY_MANYLINUX: [((i64, i64), &str); 3] = [
    ((2, 17), "manylinux2014"),
    ((2, 12), "manylinux2010"),
    ((2, 5), "manylinux1"),
];

/// `_manylinux._LAST_GLIBC_MINOR`: the assumed last minor of an older glibc
/// major version.
const LAST_GLIBC_MINOR: i64 = 50;

/// The platform tags, best first. Linux follows `tags._linux_platforms`;
/// other systems get `sysconfig.get_platform()` normalized, which is what
/// packaging does except on macOS, iOS, Android and Emscripten (whose lists
/// keel does not compute).
pub(crate) fn platforms(interpreter: &Interpreter, order: TagOrder) -> Vec<String> {
    let platform = normalize(&interpreter.sysconfig_platform);
    let system = interpreter.markers.platform_system.as_str();
    if system != "Linux" || !platform.starts_with("linux_") {
        if matches!(system, "Darwin" | "iOS" | "Android" | "Emscripten") {
            tracing::warn!(
                "keel computes only the `{platform}` platform tag for {system}; wheels for older {system} versions will not be found"
            );
        }
        return vec![platform];
    }
    // A 32-bit userland on a 64-bit kernel: `get_platform()` is the kernel's.
    let linux = match (interpreter.pointer_bits, platform.as_str()) {
        (32, "linux_x86_64") => "linux_i686".to_string(),
        (32, "linux_aarch64") => "linux_armv8l".to_string(),
        _ => platform,
    };
    let arch = &linux["linux_".len()..];
    let archs: Vec<&str> = if arch == "armv8l" {
        vec!["armv8l", "armv7l"]
    } else {
        vec![arch]
    };
    let native = archs.iter().map(|arch| format!("linux_{arch}"));
    let many = manylinux(interpreter, &archs);
    let musl = musllinux(interpreter, &archs);
    match order {
        TagOrder::NativeFirst => native.chain(many).chain(musl).collect(),
        TagOrder::NativeLast => many.into_iter().chain(musl).chain(native).collect(),
    }
}

/// `_manylinux.platform_tags` (PEP 600): for each arch, every glibc version
/// from the running one down to the floor (2.5 on x86, 2.17 elsewhere), the
/// legacy alias right after its twin, minus what a `_manylinux` module
/// vetoes.
fn manylinux(interpreter: &Interpreter, archs: &[&str]) -> Vec<String> {
    if !compatible_abi(interpreter.elf.as_ref(), archs) {
        return Vec::new();
    }
    let Some((major, minor)) = interpreter.libc.glibc else {
        return Vec::new();
    };
    let current = (i64::from(major), i64::from(minor));
    let floor = if archs.iter().any(|a| matches!(*a, "x86_64" | "i686")) {
        (2, 4)
    } else {
        (2, 16)
    };
    let vetoed: HashSet<&str> = interpreter
        .manylinux_vetoed
        .iter()
        .map(String::as_str)
        .collect();
    let tops =
        std::iter::once(current).chain((2..current.0).rev().map(|major| (major, LAST_GLIBC_MINOR)));
    let tops: Vec<(i64, i64)> = tops.collect();
    let mut tags = Vec::new();
    for arch in archs {
        for &(major, top) in &tops {
            let lowest = if major == floor.0 { floor.1 + 1 } else { 0 };
            for minor in (lowest..=top).rev() {
                let tag = format!("manylinux_{major}_{minor}_{arch}");
                if vetoed.contains(tag.as_str()) {
                    continue;
                }
                tags.push(tag);
                if let Some((_, legacy)) =
                    LEGACY_MANYLINUX.iter().find(|(v, _)| *v == (major, minor))
                {
                    tags.push(format!("{legacy}_{arch}"));
                }
            }
        }
    }
    tags
}

/// `_manylinux._have_compatible_abi`: armv7l needs a hard-float EABI5
/// executable, i686 a 32-bit x86 one, the rest an allow-listed arch.
fn compatible_abi(elf: Option<&ElfHeader>, archs: &[&str]) -> bool {
    const EF_ARM_ABIMASK: u32 = 0xFF00_0000;
    const EF_ARM_ABI_VER5: u32 = 0x0500_0000;
    const EF_ARM_ABI_FLOAT_HARD: u32 = 0x0000_0400;
    let lsb32 = |machine: u16| elf.filter(|e| e.class == 1 && e.data == 1 && e.machine == machine);
    if archs.contains(&"armv7l") {
        return lsb32(40).is_some_and(|e| {
            e.flags & EF_ARM_ABIMASK == EF_ARM_ABI_VER5
                && e.flags & EF_ARM_ABI_FLOAT_HARD == EF_ARM_ABI_FLOAT_HARD
        });
    }
    if archs.contains(&"i686") {
        return lsb32(3).is_some();
    }
    archs.iter().any(|arch| MANYLINUX_ARCHS.contains(arch))
}

/// `_musllinux.platform_tags` (PEP 656): for each arch, every musl minor
/// from the running one down to 0.
fn musllinux(interpreter: &Interpreter, archs: &[&str]) -> Vec<String> {
    let Some((major, minor)) = interpreter.libc.musl else {
        return Vec::new();
    };
    archs
        .iter()
        .flat_map(|arch| {
            (0..=minor)
                .rev()
                .map(move |m| format!("musllinux_{major}_{m}_{arch}"))
        })
        .collect()
}

/// `tags._normalize_string`: `.`, `-` and ` ` become `_`.
pub(crate) fn normalize(text: &str) -> String {
    text.replace(['.', '-', ' '], "_")
}
