//! Tables for people and for pipes: aligned columns with relative dates on a terminal, tab-
//! separated rows with RFC 3339 times otherwise (as `gh` does).

use keyward_common::Timestamp;

/// How output is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Style {
    /// Standard output is a terminal: align columns, print a header, relative dates.
    pub tty: bool,
    /// Unix seconds now, for relative dates.
    pub now: i64,
}

impl Style {
    /// A time as this style shows it; `-` for none.
    #[must_use]
    pub fn time(&self, t: Option<Timestamp>) -> String {
        match t {
            None => "-".to_owned(),
            Some(t) if self.tty => relative(t.unix(), self.now),
            Some(t) => t.to_rfc3339(),
        }
    }
}

/// Rows under a header.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// An empty table with these column names.
    #[must_use]
    pub fn new(header: &[&str]) -> Self {
        Self {
            header: header.iter().map(|h| (*h).to_owned()).collect(),
            rows: Vec::new(),
        }
    }

    /// Adds a row (cells beyond the header are dropped, missing ones are empty).
    pub fn row(&mut self, cells: Vec<String>) {
        let mut cells = cells;
        cells.resize(self.header.len(), String::new());
        self.rows.push(cells);
    }

    /// Whether it has no rows.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The text: on a terminal a header in capitals and columns padded to their widest cell;
    /// otherwise one tab-separated line per row, no header. Ends with a newline when not empty.
    #[must_use]
    pub fn render(&self, tty: bool) -> String {
        let mut out = String::new();
        if !tty {
            for row in &self.rows {
                let cells: Vec<String> = row.iter().map(|c| c.replace(['\t', '\n'], " ")).collect();
                out.push_str(&cells.join("\t"));
                out.push('\n');
            }
            return out;
        }
        let header: Vec<String> = self.header.iter().map(|h| h.to_uppercase()).collect();
        let mut widths: Vec<usize> = header.iter().map(|h| width(h)).collect();
        for row in &self.rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(width(cell));
            }
        }
        for row in std::iter::once(&header).chain(&self.rows) {
            let last = row.len().saturating_sub(1);
            let mut line = String::new();
            for (i, (cell, w)) in row.iter().zip(&widths).enumerate() {
                line.push_str(cell);
                if i < last {
                    line.push_str(&" ".repeat(w - width(cell) + 2));
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// Display width, counting characters (the display prefix's `…` is one).
fn width(s: &str) -> usize {
    s.chars().count()
}

/// `just now`, `5 minutes ago`, `in 3 days`, …
#[must_use]
pub fn relative(t: i64, now: i64) -> String {
    let delta = now - t;
    let ago = delta >= 0;
    let s = delta.unsigned_abs();
    if s < 45 {
        return if ago { "just now" } else { "in a moment" }.to_owned();
    }
    let (n, unit) = match s {
        0..3_600 => (s.div_ceil(60).min(59), "minute"),
        3_600..86_400 => (s / 3_600, "hour"),
        86_400..2_592_000 => (s / 86_400, "day"),
        2_592_000..31_536_000 => (s / 2_592_000, "month"),
        _ => (s / 31_536_000, "year"),
    };
    let plural = if n == 1 { "" } else { "s" };
    if ago {
        format!("{n} {unit}{plural} ago")
    } else {
        format!("in {n} {unit}{plural}")
    }
}

/// A list as one cell: `a, b`, or `-` when empty.
#[must_use]
pub fn list(items: &[String]) -> String {
    if items.is_empty() {
        "-".to_owned()
    } else {
        items.join(", ")
    }
}

/// Label/value lines for one record, labels aligned on a terminal, tab-separated otherwise.
#[must_use]
pub fn fields(pairs: &[(&str, String)], tty: bool) -> String {
    let w = pairs.iter().map(|(k, _)| width(k)).max().unwrap_or(0);
    let mut out = String::new();
    for (k, v) in pairs {
        if tty {
            out.push_str(&format!("{k}:{}{v}\n", " ".repeat(w - width(k) + 1)));
        } else {
            out.push_str(&format!("{k}\t{v}\n"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> Table {
        let mut t = Table::new(&["id", "name", "status"]);
        t.row(vec![
            "key_1".into(),
            "billing service".into(),
            "active".into(),
        ]);
        t.row(vec!["key_22".into(), "ci…".into(), "revoked".into()]);
        t
    }

    #[test]
    fn a_terminal_gets_a_header_and_aligned_columns() {
        assert_eq!(
            table().render(true),
            "ID      NAME             STATUS\n\
             key_1   billing service  active\n\
             key_22  ci…              revoked\n"
        );
    }

    #[test]
    fn a_pipe_gets_tab_separated_rows_without_header() {
        assert_eq!(
            table().render(false),
            "key_1\tbilling service\tactive\nkey_22\tci…\trevoked\n"
        );
    }

    #[test]
    fn tabs_inside_cells_cannot_shift_columns() {
        let mut t = Table::new(&["a", "b"]);
        t.row(vec!["x\ty".into()]);
        assert_eq!(t.render(false), "x y\t\n");
    }

    #[test]
    fn dates_are_relative_on_a_terminal() {
        let now = 1_800_000_000;
        assert_eq!(relative(now - 10, now), "just now");
        assert_eq!(relative(now - 60, now), "1 minute ago");
        assert_eq!(relative(now - 3 * 3_600, now), "3 hours ago");
        assert_eq!(relative(now + 2 * 86_400, now), "in 2 days");
        assert_eq!(relative(now - 400 * 86_400, now), "1 year ago");
        let tty = Style { tty: true, now };
        let pipe = Style { tty: false, now };
        assert_eq!(tty.time(Some(Timestamp(now - 120))), "2 minutes ago");
        assert_eq!(pipe.time(Some(Timestamp(0))), "1970-01-01T00:00:00Z");
        assert_eq!(pipe.time(None), "-");
    }

    #[test]
    fn fields_align_their_labels() {
        let f = fields(&[("id", "key_1".into()), ("status", "active".into())], true);
        assert_eq!(f, "id:     key_1\nstatus: active\n");
    }
}
