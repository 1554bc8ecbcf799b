//! Reading `keys import` CSV files: one key per row, each remembered with its line number so
//! that every refusal (here or by the API) names the line to fix.

use keyward_common::Timestamp;

use crate::client::{ImportKey, ShownSecret};

/// The columns a file may have.
pub const COLUMNS: &[&str] = &[
    "key",
    "hash",
    "name",
    "scopes",
    "roles",
    "owner_id",
    "expires_at",
];

/// A row ready to send.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// 1-based line in the file.
    pub line: u64,
    /// The key.
    pub key: ImportKey,
}

/// A row that cannot be sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadRow {
    /// 1-based line in the file.
    pub line: u64,
    /// What is wrong.
    pub detail: String,
}

/// A parsed file.
#[derive(Debug, Default, PartialEq)]
pub struct Parsed {
    /// Good rows, in file order.
    pub rows: Vec<Row>,
    /// Rows refused before sending.
    pub bad: Vec<BadRow>,
}

/// Why a file cannot be read at all.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// The header is missing or names an unknown column.
    #[error("{0}")]
    Header(String),
    /// Not CSV.
    #[error("reading the CSV: {0}")]
    Csv(#[from] csv::Error),
}

/// Parses a CSV text with a header row (see [`COLUMNS`]; `;` separates several scopes or roles
/// in a cell).
///
/// # Errors
/// [`FileError`] when the header is unusable or the text is not CSV; bad rows are not errors
/// but land in [`Parsed::bad`].
pub fn parse(text: &str) -> Result<Parsed, FileError> {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let header: Vec<String> = reader
        .headers()?
        .iter()
        .map(|h| h.trim_start_matches('\u{feff}').to_ascii_lowercase())
        .collect();
    if let Some(unknown) = header.iter().find(|h| !COLUMNS.contains(&h.as_str())) {
        return Err(FileError::Header(format!(
            "unknown column `{unknown}`; the columns are {}",
            COLUMNS.join(", ")
        )));
    }
    let column = |name: &str| header.iter().position(|h| h == name);
    if column("name").is_none() || (column("key").is_none() && column("hash").is_none()) {
        return Err(FileError::Header(
            "the header must name `name` and `key` or `hash`".to_owned(),
        ));
    }
    let mut parsed = Parsed::default();
    for record in reader.records() {
        let record = record?;
        // From the byte offset: the reader's own line count skips blank lines.
        let line = record.position().map_or(0, |p| line_of(text, p.byte()));
        if record.iter().all(str::is_empty) {
            continue;
        }
        if record.len() != header.len() {
            parsed.bad.push(BadRow {
                line,
                detail: format!("{} cells, the header has {}", record.len(), header.len()),
            });
            continue;
        }
        let cell = |name: &str| {
            column(name)
                .and_then(|i| record.get(i))
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
        };
        match row(&cell) {
            Ok(key) => parsed.rows.push(Row { line, key }),
            Err(detail) => parsed.bad.push(BadRow { line, detail }),
        }
    }
    Ok(parsed)
}

fn row(cell: &dyn Fn(&str) -> Option<String>) -> Result<ImportKey, String> {
    let name = cell("name").ok_or("`name` is empty")?;
    let (key, hash) = match (cell("key"), cell("hash")) {
        (Some(_), Some(_)) => return Err("give `key` or `hash`, not both".to_owned()),
        (None, None) => return Err("`key` and `hash` are both empty".to_owned()),
        (k, h) => (k, h),
    };
    if let Some(h) = &hash
        && !(h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
    {
        return Err("`hash` must be 64 hexadecimal characters (SHA-256)".to_owned());
    }
    let expires_at = match cell("expires_at") {
        None => None,
        Some(t) => Some(
            Timestamp::parse_rfc3339(&t)
                .map_err(|_| format!("`expires_at` `{t}` is not an RFC 3339 time"))?,
        ),
    };
    Ok(ImportKey {
        key: key.map(ShownSecret::new),
        hash: hash.map(|h| h.to_ascii_lowercase()),
        name,
        scopes: cell("scopes").map(|s| split(&s)),
        roles: cell("roles").map(|s| split(&s)).unwrap_or_default(),
        owner_id: cell("owner_id"),
        expires_at,
    })
}

/// The 1-based line of the record starting at byte `offset` of `text` (the reader may point at
/// the blank lines before it).
fn line_of(text: &str, offset: u64) -> u64 {
    let mut end = usize::try_from(offset)
        .unwrap_or(usize::MAX)
        .min(text.len());
    while matches!(text.as_bytes().get(end), Some(b'\n' | b'\r')) {
        end += 1;
    }
    text.as_bytes()[..end]
        .iter()
        .filter(|b| **b == b'\n')
        .count() as u64
        + 1
}

/// `a; b;;c` → `[a, b, c]`.
fn split(s: &str) -> Vec<String> {
    s.split(';')
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

    #[test]
    fn good_rows_keep_their_line_and_split_lists() {
        let text = format!(
            "key,hash,name,scopes,roles,owner_id,expires_at\n\
             sk_live_1,,billing,read; write,viewer,cust_1,2030-01-01T00:00:00Z\n\
             ,{HASH},\"legacy, imported\",,,,\n"
        );
        let p = parse(&text).unwrap();
        assert!(p.bad.is_empty(), "{:?}", p.bad);
        assert_eq!(p.rows[0].line, 2);
        let k = &p.rows[0].key;
        assert_eq!(k.key.as_ref().map(ShownSecret::expose), Some("sk_live_1"));
        assert_eq!(
            k.scopes.as_deref(),
            Some(&["read".to_owned(), "write".to_owned()][..])
        );
        assert_eq!(k.roles, ["viewer"]);
        assert_eq!(k.expires_at, Some(Timestamp(1_893_456_000)));
        assert_eq!(p.rows[1].line, 3);
        assert_eq!(p.rows[1].key.name, "legacy, imported");
        assert_eq!(p.rows[1].key.hash.as_deref(), Some(HASH));
        assert_eq!(
            p.rows[1].key.scopes, None,
            "no scopes: the deployment's default"
        );
    }

    #[test]
    fn bad_rows_are_reported_by_line_and_the_rest_kept() {
        let text = "key,name,expires_at\n\
                    a,,\n\
                    b,ok,\n\
                    c,late,tomorrow\n\
                    d,too,many,cells\n\
                    \n\
                    e,fine,\n";
        let p = parse(text).unwrap();
        let bad: Vec<(u64, &str)> = p.bad.iter().map(|b| (b.line, b.detail.as_str())).collect();
        assert_eq!(bad[0], (2, "`name` is empty"));
        assert_eq!(bad[1].0, 4);
        assert!(bad[1].1.contains("RFC 3339"), "{}", bad[1].1);
        assert_eq!(bad[2], (5, "4 cells, the header has 3"));
        let lines: Vec<u64> = p.rows.iter().map(|r| r.line).collect();
        assert_eq!(lines, [3, 7]);
    }

    #[test]
    fn key_and_hash_are_exclusive_and_a_hash_must_be_sha256_hex() {
        let p = parse(&format!("key,hash,name\nk,{HASH},n\n,,n\n,abc,n\n")).unwrap();
        let details: Vec<&str> = p.bad.iter().map(|b| b.detail.as_str()).collect();
        assert_eq!(
            details,
            [
                "give `key` or `hash`, not both",
                "`key` and `hash` are both empty",
                "`hash` must be 64 hexadecimal characters (SHA-256)"
            ]
        );
    }

    #[test]
    fn an_unusable_header_refuses_the_whole_file() {
        for text in ["name,scopes\nn,read\n", "key,name,color\nk,n,red\n", ""] {
            assert!(matches!(parse(text), Err(FileError::Header(_))), "{text:?}");
        }
    }
}
