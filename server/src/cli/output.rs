//! How results are printed: for people, aligned tables and short sentences on stdout (and
//! progress on stderr); with `--json`, the server's wire JSON on stdout and nothing else, so
//! scripts can rely on it. Rendering is pure ([`Table::render`], [`utc`], [`bytes`]) and
//! printing is one place ([`Output`]).

use std::io::{IsTerminal as _, Write as _};

use serde::Serialize;

/// Where output goes: chosen by `--json`, or quiet for callers that tell their own story
/// (the demo reuses `publish`'s steps without their notes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Output {
    mode: Mode,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Human,
    Json,
    Quiet,
}

impl Output {
    /// Tables for people, or JSON for scripts.
    pub fn new(json: bool) -> Self {
        Output { mode: if json { Mode::Json } else { Mode::Human } }
    }

    /// Prints nothing at all.
    pub fn quiet() -> Self {
        Output { mode: Mode::Quiet }
    }

    /// Prints `value` as pretty wire JSON under `--json`, else the text `human` renders.
    pub fn emit<T: Serialize>(&self, value: &T, human: impl FnOnce(&T) -> String) -> anyhow::Result<()> {
        match self.mode {
            Mode::Json => print(&format!("{}\n", serde_json::to_string_pretty(value)?)),
            Mode::Human => self.line(&human(value)),
            Mode::Quiet => Ok(()),
        }
    }

    /// Whether `--json` was asked for.
    pub fn is_json(&self) -> bool {
        self.mode == Mode::Json
    }

    /// Prints `value` as one line of compact JSON under `--json` (JSON Lines, for a stream of
    /// values such as `status --watch`); nothing otherwise.
    pub fn json_line<T: Serialize>(&self, value: &T) -> anyhow::Result<()> {
        match self.mode {
            Mode::Json => print(&format!("{}\n", serde_json::to_string(value)?)),
            Mode::Human | Mode::Quiet => Ok(()),
        }
    }

    /// Prints a line (or lines) for people; nothing under `--json`.
    pub fn line(&self, text: &str) -> anyhow::Result<()> {
        if self.mode != Mode::Human {
            return Ok(());
        }
        let text = text.trim_end_matches('\n');
        print(&format!("{text}\n"))
    }

    /// Prints a note about progress on stderr, for people only.
    pub fn note(&self, text: &str) {
        if self.mode == Mode::Human {
            eprintln!("{text}");
        }
    }

    /// Whether animated progress makes sense: a person is watching stderr and did not ask for
    /// JSON.
    pub fn shows_progress(&self) -> bool {
        self.mode == Mode::Human && std::io::stderr().is_terminal()
    }

    /// Whether stdout is a terminal that understands bold text.
    pub fn styled(&self) -> bool {
        self.mode == Mode::Human && std::io::stdout().is_terminal()
    }
}

/// Writes to stdout. A closed pipe (`halftone releases notes | head -1`) is not an error.
fn print(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}

/// Text in bold when `styled`, for the one thing on screen that matters most.
pub fn bold(text: &str, styled: bool) -> String {
    if styled { format!("\x1b[1m{text}\x1b[0m") } else { text.to_owned() }
}

/// A plain text table: a header row and columns padded to their widest cell, two spaces
/// apart; the last column is not padded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Table {
    headers: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column headers.
    pub fn new<S: Into<String>>(headers: impl IntoIterator<Item = S>) -> Self {
        Table { headers: headers.into_iter().map(Into::into).collect(), rows: Vec::new() }
    }

    /// Adds a row; missing cells are empty, extra cells are dropped.
    pub fn row<S: Into<String>>(&mut self, cells: impl IntoIterator<Item = S>) -> &mut Self {
        let mut row: Vec<String> = cells.into_iter().map(Into::into).collect();
        row.resize(self.headers.len(), String::new());
        self.rows.push(row);
        self
    }

    /// True when no row was added.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The table as text, one line per row, each ending in a newline.
    pub fn render(&self) -> String {
        let width = |i: usize| {
            std::iter::once(&self.headers[i]).chain(self.rows.iter().map(|r| &r[i])).map(|c| columns(c)).max()
        };
        let widths: Vec<usize> = (0..self.headers.len()).map(|i| width(i).unwrap_or(0)).collect();
        let mut out = String::new();
        for row in std::iter::once(&self.headers).chain(&self.rows) {
            let mut line = String::new();
            for (i, cell) in row.iter().enumerate() {
                if i > 0 {
                    line.push_str("  ");
                }
                line.push_str(cell);
                if i + 1 < row.len() {
                    line.extend(std::iter::repeat_n(' ', widths[i] - columns(cell)));
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// How many terminal columns `text` takes: two for East Asian wide characters (app names and
/// device ids may well be Chinese or Japanese), one for everything else. Combining marks and
/// emoji are rare enough in these tables to count as one.
fn columns(text: &str) -> usize {
    let wide = |c: char| {
        matches!(c as u32,
            0x1100..=0x115F | 0x2E80..=0x303E | 0x3041..=0x33FF | 0x3400..=0x4DBF | 0x4E00..=0x9FFF
            | 0xA000..=0xA4CF | 0xAC00..=0xD7A3 | 0xF900..=0xFAFF | 0xFE30..=0xFE4F | 0xFF00..=0xFF60
            | 0xFFE0..=0xFFE6 | 0x20000..=0x3FFFD)
    };
    text.chars().map(|c| if wide(c) { 2 } else { 1 }).sum()
}

/// Milliseconds since the Unix epoch as a UTC time, `2026-11-03 14:05:09Z`.
pub fn utc(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (Howard Hinnant's
/// `civil_from_days`, for non-negative days).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

/// A byte count for people: `512 B`, `12.3 KiB`, `4.0 MiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_columns_and_leave_the_last_unpadded() {
        let mut t = Table::new(["VERSION", "CHANNEL", "PERCENT"]);
        t.row(["1.10.0", "stable", "5%"]).row(["1.9.0", "beta", "100%"]).row(["", "stable"]);
        assert_eq!(
            t.render(),
            "VERSION  CHANNEL  PERCENT\n\
             1.10.0   stable   5%\n\
             1.9.0    beta     100%\n         \
             stable\n"
        );
        // Wide characters take two columns each.
        let mut wide = Table::new(["APP", "NAME", "KEYS"]);
        wide.row(["notes", "笔记", "1"]).row(["chat", "Chat app", "2"]);
        assert_eq!(wide.render(), "APP    NAME      KEYS\nnotes  笔记      1\nchat   Chat app  2\n");
        assert_eq!(columns("ｈｉ设备ab"), 10);
        assert!(Table::new(["A"]).is_empty());
    }

    #[test]
    fn times_print_in_utc() {
        for (ms, shown) in [
            (0, "1970-01-01 00:00:00Z"),
            (951_782_400_000, "2000-02-29 00:00:00Z"),
            (1_793_714_709_123, "2026-11-03 14:05:09Z"),
            (4_102_444_799_000, "2099-12-31 23:59:59Z"),
        ] {
            assert_eq!(utc(ms), shown, "{ms}");
        }
    }

    #[test]
    fn byte_counts_read_well() {
        for (n, shown) in [(0, "0 B"), (1023, "1023 B"), (1024, "1.0 KiB"), (12_900_000, "12.3 MiB")] {
            assert_eq!(bytes(n), shown);
        }
    }

    #[test]
    fn quiet_and_json_print_nothing_for_people() {
        assert!(!Output::quiet().shows_progress());
        assert!(!Output::new(true).styled());
        assert!(Output::quiet().line("x").is_ok());
    }
}
