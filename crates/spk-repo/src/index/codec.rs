//! The binary encoding of one package's section.
//!
//! ```text
//! section := name:str  nversions:uv  version*
//! version := text:str  nbuilds:uv  build*
//! build   := build:str flags:u8 (1 deprecated, 2 has compat) [compat:str]
//!            nopts:uv req*  nreqs:uv req*  ncomps:uv str*
//! req     := kind:u8 (0 var, 1 pkg)  name:str  value:str
//! str     := len:uv  UTF-8 bytes
//! ```
//! `uv` is an unsigned LEB128 varint (one byte below 128), the `u32` counts
//! too: most lengths and counts are small, and this keeps the index about a
//! quarter smaller than fixed 4-byte integers. Decoding checks every length against the
//! bytes that remain, so a damaged section is an error, never a panic or a
//! huge allocation.

use crate::model::{BuildEntry, PackageEntry, ReqKind, Requirement, VersionEntry};

fn put_u32(out: &mut Vec<u8>, n: usize) {
    // Lengths and counts are far below 4 Gi; clamp rather than wrap.
    let mut n = n.min(u32::MAX as usize) as u32;
    while n >= 0x80 {
        out.push((n as u8 & 0x7f) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_u32(out, s.len());
    out.extend_from_slice(s.as_bytes());
}

fn put_reqs(out: &mut Vec<u8>, reqs: &[Requirement]) {
    put_u32(out, reqs.len());
    for r in reqs {
        out.push(match r.kind {
            ReqKind::Var => 0,
            ReqKind::Pkg => 1,
        });
        put_str(out, &r.name);
        put_str(out, &r.value);
    }
}

/// Encodes one package.
pub fn encode(p: &PackageEntry) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    put_str(&mut out, &p.name);
    put_u32(&mut out, p.versions.len());
    for v in &p.versions {
        put_str(&mut out, &v.version);
        put_u32(&mut out, v.builds.len());
        for b in &v.builds {
            put_str(&mut out, &b.build);
            let flags = u8::from(b.deprecated) | if b.compat.is_some() { 2 } else { 0 };
            out.push(flags);
            if let Some(c) = &b.compat {
                put_str(&mut out, c);
            }
            put_reqs(&mut out, &b.options);
            put_reqs(&mut out, &b.requirements);
            put_u32(&mut out, b.components.len());
            for c in &b.components {
                put_str(&mut out, c);
            }
        }
    }
    out
}

struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], String> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|e| *e <= self.buf.len())
            .ok_or_else(|| {
                format!(
                    "truncated: {what} needs {n} bytes at offset {} of a {}-byte section",
                    self.pos,
                    self.buf.len()
                )
            })?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn u8(&mut self, what: &str) -> Result<u8, String> {
        Ok(self.take(1, what)?[0])
    }
    fn u32(&mut self, what: &str) -> Result<usize, String> {
        let mut n: u64 = 0;
        for shift in (0..35).step_by(7) {
            let b = self.u8(what)?;
            n |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                if n > u64::from(u32::MAX) {
                    break;
                }
                return Ok(n as usize);
            }
        }
        Err(format!("{what}: a malformed number at offset {}", self.pos))
    }
    /// A count of items each at least `min_size` bytes: checked against
    /// what remains before anything is allocated.
    fn count(&mut self, what: &str, min_size: usize) -> Result<usize, String> {
        let n = self.u32(what)?;
        let left = self.buf.len() - self.pos;
        if n.saturating_mul(min_size) > left {
            return Err(format!(
                "{what} is {n}, more than the {left} remaining bytes can hold"
            ));
        }
        Ok(n)
    }
    fn str(&mut self, what: &str) -> Result<String, String> {
        let n = self.u32(what)?;
        let b = self.take(n, what)?;
        std::str::from_utf8(b)
            .map(str::to_string)
            .map_err(|_| format!("{what} is not UTF-8"))
    }
    fn reqs(&mut self, what: &str) -> Result<Vec<Requirement>, String> {
        let n = self.count(what, 3)?;
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            let kind = match self.u8(what)? {
                0 => ReqKind::Var,
                1 => ReqKind::Pkg,
                k => return Err(format!("{what}: unknown kind {k}")),
            };
            out.push(Requirement {
                kind,
                name: self.str(what)?,
                value: self.str(what)?,
            });
        }
        Ok(out)
    }
}

/// Decodes one package's section.
pub fn decode(buf: &[u8]) -> Result<PackageEntry, String> {
    let mut c = Cursor { buf, pos: 0 };
    let name = c.str("package name")?;
    let nv = c.count("version count", 2)?;
    let mut versions = Vec::with_capacity(nv);
    for _ in 0..nv {
        let version = c.str("version")?;
        let nb = c.count("build count", 5)?;
        let mut builds = Vec::with_capacity(nb);
        for _ in 0..nb {
            let build = c.str("build")?;
            let flags = c.u8("build flags")?;
            if flags & !3 != 0 {
                return Err(format!("build {build}: unknown flags {flags:#x}"));
            }
            let compat = if flags & 2 != 0 {
                Some(c.str("compat")?)
            } else {
                None
            };
            let options = c.reqs("options")?;
            let requirements = c.reqs("requirements")?;
            let nc = c.count("component count", 1)?;
            let mut components = Vec::with_capacity(nc);
            for _ in 0..nc {
                components.push(c.str("component")?);
            }
            builds.push(BuildEntry {
                build,
                deprecated: flags & 1 != 0,
                compat,
                options,
                requirements,
                components,
            });
        }
        versions.push(VersionEntry { version, builds });
    }
    if c.pos != buf.len() {
        return Err(format!(
            "{} unexpected bytes after the package",
            buf.len() - c.pos
        ));
    }
    Ok(PackageEntry { name, versions })
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample() -> PackageEntry {
        PackageEntry {
            name: "my-pkg".into(),
            versions: vec![VersionEntry {
                version: "1.0".into(),
                builds: vec![
                    BuildEntry {
                        build: "3I42H3S6".into(),
                        deprecated: true,
                        compat: Some("x.ab".into()),
                        options: vec![Requirement::parse(ReqKind::Var, "arch/x86_64")],
                        requirements: vec![Requirement::parse(ReqKind::Pkg, "python/~3.9")],
                        components: vec!["run".into(), "build".into()],
                    },
                    BuildEntry {
                        build: "src".into(),
                        deprecated: false,
                        compat: None,
                        options: vec![],
                        requirements: vec![],
                        components: vec![],
                    },
                ],
            }],
        }
    }

    #[test]
    fn varints() {
        for n in [0usize, 1, 127, 128, 300, 16383, 16384, u32::MAX as usize] {
            let mut b = Vec::new();
            put_u32(&mut b, n);
            let mut c = Cursor { buf: &b, pos: 0 };
            assert_eq!(c.u32("n").unwrap(), n);
            assert_eq!(c.pos, b.len());
        }
        let mut c = Cursor {
            buf: &[0xff, 0xff, 0xff, 0xff, 0xff, 0x01],
            pos: 0,
        };
        assert!(c.u32("n").unwrap_err().contains("malformed"));
    }

    #[test]
    fn round_trip() {
        let p = sample();
        assert_eq!(decode(&encode(&p)).unwrap(), p);
    }

    #[test]
    fn every_truncation_and_garbage_is_an_error() {
        let bytes = encode(&sample());
        for n in 0..bytes.len() {
            assert!(decode(&bytes[..n]).is_err(), "prefix {n} decoded");
        }
        let mut extra = bytes.clone();
        extra.push(0);
        assert!(decode(&extra).unwrap_err().contains("unexpected bytes"));
        // A huge count must not allocate.
        let mut huge = Vec::new();
        put_str(&mut huge, "ab");
        put_u32(&mut huge, u32::MAX as usize);
        assert!(decode(&huge).unwrap_err().contains("version count"));
        // Flip every byte: an error or a different value, never a panic.
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0xff;
            let _ = decode(&b);
        }
    }
}
