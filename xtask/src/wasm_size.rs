//! What the edge's WASM bytes are: its sections (raw and gzip), and its code by crate, read from
//! the module's own name section (twiggy's shallow sizes, without installing twiggy).
//!
//! `cargo xtask build-edge` measures the module before it drops the name section, so the figures
//! describe the very module that ships; `cargo xtask bench` puts them in `bench.json` and the
//! README's tables.

use std::collections::BTreeMap;
use std::io::Write;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

/// One section of the module.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Section {
    pub name: String,
    pub raw_bytes: u64,
    /// The section's body alone, gzip at the default level.
    pub gzip_bytes: u64,
}

/// Code bytes of one crate (the function bodies whose names start with it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CrateBytes {
    #[serde(rename = "crate")]
    pub krate: String,
    pub code_bytes: u64,
}

/// The module's sections, largest first, and its code by crate, largest first.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Breakdown {
    pub sections: Vec<Section>,
    pub code_by_crate: Vec<CrateBytes>,
}

fn leb(bytes: &[u8], at: &mut usize) -> Result<u64> {
    let (mut value, mut shift) = (0u64, 0);
    loop {
        let byte = *bytes.get(*at).context("a LEB128 number is cut short")?;
        *at += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte < 0x80 {
            return Ok(value);
        }
        shift += 7;
        if shift > 35 {
            bail!("a LEB128 number is not a u32");
        }
    }
}

/// A LEB128 length at `at` (moved past it).
///
/// # Errors
/// When the number is cut short or does not fit a u32.
pub fn len(bytes: &[u8], at: &mut usize) -> Result<usize> {
    usize::try_from(leb(bytes, at)?).context("a length does not fit")
}

fn name<'a>(bytes: &'a [u8], at: &mut usize) -> Result<&'a str> {
    let n = len(bytes, at)?;
    let s = bytes
        .get(*at..*at + n)
        .context("a name runs past its section")?;
    *at += n;
    std::str::from_utf8(s).context("a name is not UTF-8")
}

fn gzip_len(data: &[u8]) -> Result<u64> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(data)?;
    Ok(enc.finish()?.len() as u64)
}

/// The number of functions the import section imports (they come first in the index space).
fn imported_functions(body: &[u8]) -> Result<u64> {
    let mut at = 0;
    let count = leb(body, &mut at)?;
    let mut funcs = 0;
    for _ in 0..count {
        name(body, &mut at)?;
        name(body, &mut at)?;
        let kind = *body.get(at).context("an import is cut short")?;
        at += 1;
        let limits = |at: &mut usize| -> Result<()> {
            let flags = *body.get(*at).context("limits cut short")?;
            *at += 1;
            leb(body, at)?;
            if flags & 1 == 1 {
                leb(body, at)?;
            }
            Ok(())
        };
        match kind {
            0 => {
                leb(body, &mut at)?;
                funcs += 1;
            }
            1 => {
                at += 1;
                limits(&mut at)?;
            }
            2 => limits(&mut at)?,
            3 => at += 2,
            4 => {
                at += 1;
                leb(body, &mut at)?;
            }
            other => bail!("unknown import kind {other}"),
        }
    }
    Ok(funcs)
}

/// Function names by index, from the `name` custom section's function subsection.
fn function_names(body: &[u8]) -> Result<BTreeMap<u64, String>> {
    let mut at = 0;
    let mut names = BTreeMap::new();
    while at < body.len() {
        let id = body[at];
        at += 1;
        let size = len(body, &mut at)?;
        let end = at + size;
        if id == 1 {
            let count = leb(body, &mut at)?;
            for _ in 0..count {
                let index = leb(body, &mut at)?;
                names.insert(index, name(body, &mut at)?.to_owned());
            }
        }
        at = end;
    }
    Ok(names)
}

/// The crate a function belongs to, from its (demangled) name: the first path segment, with an
/// impl's `<Type as Trait>` read as the type's crate.
#[must_use]
pub fn crate_of(function: &str) -> String {
    let mut s = function.trim_start_matches(['<', '&', ' ', '*']);
    for prefix in ["mut ", "dyn ", "const "] {
        s = s.strip_prefix(prefix).unwrap_or(s);
    }
    let ident: String = s
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    let rest = &s[ident.len()..];
    let rest = rest
        .strip_prefix('[')
        .and_then(|r| r.split_once(']'))
        .map_or(rest, |(_, r)| r);
    if ident.is_empty() || !rest.starts_with("::") {
        "(glue: wasm-bindgen shims, imports, other)".to_owned()
    } else {
        ident
    }
}

/// Reads `module`'s sections and, when it has a name section, its code by crate.
///
/// # Errors
/// When `module` is not a well-formed WASM module.
pub fn breakdown(module: &[u8]) -> Result<Breakdown> {
    if module.get(..4) != Some(b"\0asm".as_slice()) || module.len() < 8 {
        bail!("no WASM header");
    }
    let mut sections = Vec::new();
    let mut imported = 0;
    let mut bodies: Vec<u64> = Vec::new();
    let mut names = BTreeMap::new();
    let mut at = 8;
    while at < module.len() {
        let id = module[at];
        at += 1;
        let size = len(module, &mut at)?;
        let body = module
            .get(at..at + size)
            .context("a section runs past the end")?;
        at += size;
        let label = match id {
            0 => {
                let mut i = 0;
                let custom = name(body, &mut i)?;
                if custom == "name" {
                    names = function_names(&body[i..])?;
                }
                format!("custom: {custom}")
            }
            1 => "type".into(),
            2 => {
                imported = imported_functions(body)?;
                "import".into()
            }
            3 => "function".into(),
            4 => "table".into(),
            5 => "memory".into(),
            6 => "global".into(),
            7 => "export".into(),
            9 => "element".into(),
            10 => {
                let mut i = 0;
                let count = leb(body, &mut i)?;
                for _ in 0..count {
                    let start = i;
                    let n = len(body, &mut i)?;
                    i += n;
                    bodies.push((i - start) as u64);
                }
                "code".into()
            }
            11 => "data".into(),
            12 => "data count".into(),
            other => format!("section {other}"),
        };
        sections.push(Section {
            name: label,
            raw_bytes: size as u64,
            gzip_bytes: gzip_len(body)?,
        });
    }
    sections.sort_by_key(|s| std::cmp::Reverse(s.raw_bytes));
    let mut by_crate: BTreeMap<String, u64> = BTreeMap::new();
    if !names.is_empty() {
        for (i, size) in bodies.iter().enumerate() {
            let index = imported + i as u64;
            let krate = names
                .get(&index)
                .map_or_else(|| "(unnamed functions)".to_owned(), |n| crate_of(n));
            *by_crate.entry(krate).or_default() += size;
        }
    }
    let mut code_by_crate: Vec<CrateBytes> = by_crate
        .into_iter()
        .map(|(krate, code_bytes)| CrateBytes { krate, code_bytes })
        .collect();
    code_by_crate.sort_by(|a, b| b.code_bytes.cmp(&a.code_bytes).then(a.krate.cmp(&b.krate)));
    Ok(Breakdown {
        sections,
        code_by_crate,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_function_is_counted_under_its_crate_or_its_impl_type_crate() {
        assert_eq!(crate_of("core::fmt::write::h1234"), "core");
        assert_eq!(
            crate_of("<alloc::vec::Vec<T> as core::fmt::Debug>::fmt"),
            "alloc"
        );
        assert_eq!(
            crate_of("<&mut serde_json::de::Deserializer<R>>::x"),
            "serde_json"
        );
        assert_eq!(crate_of("keyward_edge::proxy::handle"), "keyward_edge");
        assert_eq!(
            crate_of("__wbg_fetch_1234"),
            "(glue: wasm-bindgen shims, imports, other)"
        );
    }

    #[test]
    fn a_module_without_names_has_sections_only() {
        // Header, then a type section with no types.
        let module = b"\0asm\x01\0\0\0\x01\x01\0";
        let b = breakdown(module).unwrap();
        assert_eq!(b.sections.len(), 1);
        assert_eq!(b.sections[0].name, "type");
        assert!(b.code_by_crate.is_empty());
    }
}
