//! CSV and JSON Lines exports: read as a stream (census) or into a compact in-memory index
//! (lookups), reloaded when the file changes.
//!
//! The index keeps every row's fields in one text arena (zeroized on drop) with 20 bytes of
//! offsets per row, and a sorted `(fingerprint, row)` table of the normalized logins and emails;
//! a lookup binary-searches the fingerprint and then compares the normalized values themselves,
//! so fingerprint collisions cannot mix users up.

use std::fs::File;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::time::SystemTime;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
use zeroize::Zeroizing;

use super::LegacyError;
use super::config::ExportKind;
use super::presets::ResultColumns;
use super::record::{RawHash, RawRow, Rules};

/// Number of fields kept per row.
const FIELDS: usize = 8;
/// Field order in [`RawRow`] terms.
const ID: usize = 0;
const LOGIN: usize = 1;
const EMAIL: usize = 2;
const HASH: usize = 3;
const FORMAT: usize = 4;
const SALT: usize = 5;
const GIVEN: usize = 6;
const FAMILY: usize = 7;
/// Length marking a missing (NULL) field.
const NULL: u16 = u16::MAX;

/// Size and modification time of a file, to notice changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stamp {
    len: u64,
    modified: Option<SystemTime>,
}

impl Stamp {
    /// The file's current stamp.
    pub fn of(path: &Path) -> std::io::Result<Stamp> {
        let m = std::fs::metadata(path)?;
        Ok(Stamp {
            len: m.len(),
            modified: m.modified().ok(),
        })
    }
}

/// The column names of the export, in field order.
fn names(cols: &ResultColumns) -> [Option<&str>; FIELDS] {
    [
        Some(cols.id.as_str()),
        cols.login.as_deref(),
        Some(cols.email.as_str()),
        Some(cols.hash.as_str()),
        cols.format.as_deref(),
        cols.salt.as_deref(),
        cols.given_name.as_deref(),
        cols.family_name.as_deref(),
    ]
}

pub(crate) fn to_raw_row(mut f: [Option<String>; FIELDS]) -> RawRow {
    RawRow {
        id: f[ID].take(),
        login: f[LOGIN].take(),
        email: f[EMAIL].take(),
        hash: f[HASH]
            .take()
            .map_or(RawHash::Null, |h| RawHash::Text(Zeroizing::new(h))),
        format: f[FORMAT].take(),
        salt: f[SALT].take().map(String::into_bytes),
        given_name: f[GIVEN].take(),
        family_name: f[FAMILY].take(),
    }
}

fn export_err(path: &Path, message: String) -> LegacyError {
    LegacyError::Export {
        path: path.display().to_string(),
        message,
    }
}

/// Reads every row of the file, calling `each` with the fields in field order (CSV: empty
/// fields are NULL). Returns the number of rows.
pub(crate) fn read_rows(
    path: &Path,
    kind: ExportKind,
    cols: &ResultColumns,
    each: &mut dyn FnMut([Option<String>; FIELDS]) -> Result<(), LegacyError>,
) -> Result<u64, LegacyError> {
    let file = File::open(path).map_err(|e| export_err(path, format!("cannot open: {e}")))?;
    let reader = BufReader::with_capacity(256 * 1024, file);
    match kind {
        ExportKind::Csv => read_csv(path, reader, cols, each),
        ExportKind::Jsonl => read_jsonl(path, reader, cols, each),
    }
}

fn read_csv(
    path: &Path,
    reader: BufReader<File>,
    cols: &ResultColumns,
    each: &mut dyn FnMut([Option<String>; FIELDS]) -> Result<(), LegacyError>,
) -> Result<u64, LegacyError> {
    let mut csv = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .from_reader(reader);
    let headers = csv
        .headers()
        .map_err(|e| export_err(path, format!("cannot read the CSV header: {e}")))?
        .clone();
    let mut index = [None; FIELDS];
    for (slot, name) in names(cols).iter().enumerate() {
        if let Some(name) = name {
            let pos = headers.iter().position(|h| h == *name).ok_or_else(|| {
                export_err(path, format!("the CSV header has no column {name:?}"))
            })?;
            index[slot] = Some(pos);
        }
    }
    let mut record = csv::StringRecord::new();
    let mut n = 0u64;
    loop {
        match csv.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            // The csv crate's errors name the position, not the field value.
            Err(e) => return Err(export_err(path, format!("{e}"))),
        }
        let fields = index.map(|i| {
            i.and_then(|i| record.get(i))
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
        });
        each(fields)?;
        n += 1;
    }
    Ok(n)
}

fn read_jsonl(
    path: &Path,
    mut reader: BufReader<File>,
    cols: &ResultColumns,
    each: &mut dyn FnMut([Option<String>; FIELDS]) -> Result<(), LegacyError>,
) -> Result<u64, LegacyError> {
    let names = names(cols);
    let mut line = Zeroizing::new(String::new());
    let (mut n, mut line_no) = (0u64, 0u64);
    loop {
        line.clear();
        let read = reader
            .read_line(&mut line)
            .map_err(|e| export_err(path, format!("line {}: {e}", line_no + 1)))?;
        if read == 0 {
            break;
        }
        line_no += 1;
        if line.trim().is_empty() {
            continue;
        }
        let mut de = serde_json::Deserializer::from_str(&line);
        let fields = RowSeed { names: &names }
            .deserialize(&mut de)
            .map_err(|e| {
                // serde_json's messages name the position and the expected type, not values.
                export_err(path, format!("line {line_no}: {}", e.classify_message()))
            })?;
        each(fields)?;
        n += 1;
    }
    Ok(n)
}

trait ClassifyMessage {
    fn classify_message(&self) -> String;
}

impl ClassifyMessage for serde_json::Error {
    fn classify_message(&self) -> String {
        format!(
            "invalid JSON object at column {} ({:?})",
            self.column(),
            self.classify()
        )
    }
}

/// Deserializes one JSON object, keeping only the mapped keys.
struct RowSeed<'a> {
    names: &'a [Option<&'a str>; FIELDS],
}

impl<'de> DeserializeSeed<'de> for RowSeed<'_> {
    type Value = [Option<String>; FIELDS];

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for RowSeed<'_> {
    type Value = [Option<String>; FIELDS];

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut out: [Option<String>; FIELDS] = Default::default();
        while let Some(slot) = map.next_key_seed(KeySeed { names: self.names })? {
            match slot {
                Some(i) => {
                    let v = map.next_value_seed(CellSeed)?;
                    if let Some(o) = out.get_mut(i) {
                        *o = v;
                    }
                }
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(out)
    }
}

/// Maps a JSON key to its field slot without allocating.
struct KeySeed<'a> {
    names: &'a [Option<&'a str>; FIELDS],
}

impl<'de> DeserializeSeed<'de> for KeySeed<'_> {
    type Value = Option<usize>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed<'_> {
    type Value = Option<usize>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a key")
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(self.names.iter().position(|n| *n == Some(v)))
    }
}

/// A JSON value as optional text: strings, numbers and booleans as text, `null` as missing.
struct CellSeed;

impl<'de> DeserializeSeed<'de> for CellSeed {
    type Value = Option<String>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for CellSeed {
    type Value = Option<String>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a string, number, boolean or null")
    }
    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Some(v.to_owned()))
    }
    fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Some(v))
    }
    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Some(v.to_string()))
    }
    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Some(v.to_string()))
    }
    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Self::Value, E> {
        Ok(Some(v.to_string()))
    }
    fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Self::Value, E> {
        Ok(Some(v.to_string()))
    }
    fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
}

/// A fingerprint of a normalized identifier (SipHash with fixed keys).
fn fingerprint(s: &str) -> u64 {
    let mut h = DefaultHasher::new();
    s.hash(&mut h);
    h.finish()
}

/// One row: where its fields start in the arena, and their lengths ([`NULL`] = missing).
#[derive(Clone, Copy)]
struct Spans {
    start: u32,
    lens: [u16; FIELDS],
}

/// The in-memory index of an export file.
pub(crate) struct Index {
    arena: Zeroizing<String>,
    rows: Vec<Spans>,
    /// `(fingerprint of a normalized login or email, row)`, sorted.
    by_ident: Vec<(u64, u32)>,
    /// Rows whose key collides with another row's.
    duplicate: Vec<bool>,
    /// The file's stamp before it was read.
    pub stamp: Stamp,
}

impl Index {
    /// Reads `path` into an index.
    pub fn load(
        path: &Path,
        kind: ExportKind,
        cols: &ResultColumns,
        rules: &Rules,
    ) -> Result<Index, LegacyError> {
        let stamp = Stamp::of(path).map_err(|e| export_err(path, format!("cannot stat: {e}")))?;
        let capacity = usize::try_from(stamp.len).unwrap_or(0);
        let mut arena = Zeroizing::new(String::with_capacity(capacity));
        let mut rows: Vec<Spans> = Vec::new();
        let mut by_ident: Vec<(u64, u32)> = Vec::new();
        let mut by_key: Vec<(u64, u32)> = Vec::new();
        let mut push = |fields: [Option<String>; FIELDS]| -> Result<(), LegacyError> {
            let row = u32::try_from(rows.len())
                .map_err(|_| export_err(path, "more than 4 billion rows".into()))?;
            let start = u32::try_from(arena.len())
                .map_err(|_| export_err(path, "more than 4 GiB of field text".into()))?;
            let mut lens = [NULL; FIELDS];
            for (len, f) in lens.iter_mut().zip(&fields) {
                if let Some(f) = f {
                    *len = u16::try_from(f.len())
                        .ok()
                        .filter(|&l| l != NULL)
                        .ok_or_else(|| {
                            export_err(
                                path,
                                format!("row {}: a field is longer than 65534 bytes", row + 1),
                            )
                        })?;
                    arena.push_str(f);
                }
            }
            let raw = to_raw_row(fields);
            let login = raw.login.as_deref().map(|l| rules.normalize.login(l));
            let email = raw.email.as_deref().map(|e| rules.normalize.email(e));
            for ident in [&login, &email].into_iter().flatten() {
                if !ident.is_empty() {
                    by_ident.push((fingerprint(ident), row));
                }
            }
            if let Some(key) = rules.key_of(&raw) {
                by_key.push((fingerprint(&key), row));
            }
            rows.push(Spans { start, lens });
            Ok(())
        };
        read_rows(path, kind, cols, &mut push)?;
        by_ident.sort_unstable();
        by_ident.dedup();
        by_ident.shrink_to_fit();
        rows.shrink_to_fit();
        let mut index = Index {
            arena,
            duplicate: vec![false; rows.len()],
            rows,
            by_ident,
            stamp,
        };
        index.mark_duplicates(by_key, rules);
        Ok(index)
    }

    fn mark_duplicates(&mut self, mut by_key: Vec<(u64, u32)>, rules: &Rules) {
        by_key.sort_unstable();
        for run in by_key.chunk_by(|a, b| a.0 == b.0).filter(|r| r.len() > 1) {
            let keys: Vec<(u32, Option<String>)> = run
                .iter()
                .map(|&(_, r)| (r, self.raw(r).and_then(|raw| rules.key_of(&raw))))
                .collect();
            for (i, (row, key)) in keys.iter().enumerate() {
                let collides = keys
                    .iter()
                    .enumerate()
                    .any(|(j, (_, other))| i != j && other == key);
                if collides && let Some(d) = self.duplicate.get_mut(*row as usize) {
                    *d = true;
                }
            }
        }
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// The raw row at `row`.
    fn raw(&self, row: u32) -> Option<RawRow> {
        let spans = self.rows.get(row as usize)?;
        let mut at = spans.start as usize;
        let mut fields: [Option<String>; FIELDS] = Default::default();
        for (f, &len) in fields.iter_mut().zip(&spans.lens) {
            if len != NULL {
                let end = at + usize::from(len);
                *f = Some(self.arena.get(at..end)?.to_owned());
                at = end;
            }
        }
        Some(to_raw_row(fields))
    }

    /// The rows whose normalized login or email equals `ident`, and whether their key is shared.
    pub fn find(&self, ident: &str, rules: &Rules) -> Vec<(RawRow, bool)> {
        let fp = fingerprint(ident);
        let from = self.by_ident.partition_point(|&(f, _)| f < fp);
        let mut out: Vec<(u32, RawRow)> = Vec::new();
        for &(f, row) in self.by_ident.iter().skip(from) {
            if f != fp || out.len() > 4 {
                break;
            }
            if out.iter().any(|(r, _)| *r == row) {
                continue;
            }
            if let Some(raw) = self.raw(row)
                && rules.matches(&raw, ident)
            {
                out.push((row, raw));
            }
        }
        out.into_iter()
            .map(|(row, raw)| {
                let dup = self.duplicate.get(row as usize).copied().unwrap_or(false);
                (raw, dup)
            })
            .collect()
    }
}
