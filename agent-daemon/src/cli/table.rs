//! Tables for people. Each column is as wide as its widest cell or header (and at least its
//! minimum, the width it had when the tables were printed with fixed widths), so a long
//! value widens its own column instead of pushing the rest of its row out from under the
//! headers. The last column is not padded (unless it is right-aligned) and no line ends
//! in spaces.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    Left,
    Right,
}

#[derive(Debug, Clone, Copy)]
pub struct Column {
    header: &'static str,
    align: Align,
    min: usize,
    /// Spaces between this column and the next.
    gap: usize,
}

/// A left-aligned column at least `min` characters wide.
pub const fn left(header: &'static str, min: usize) -> Column {
    Column { header, align: Align::Left, min, gap: 1 }
}

/// A right-aligned column (numbers) at least `min` characters wide.
pub const fn right(header: &'static str, min: usize) -> Column {
    Column { header, align: Align::Right, min, gap: 1 }
}

impl Column {
    /// `spaces` between this column and the next instead of one.
    pub const fn gap(self, spaces: usize) -> Column {
        Column { gap: spaces, ..self }
    }
}

enum Line<const N: usize> {
    Row([String; N]),
    /// A line of its own between the rows, as it is (its length widens no column).
    Note(String),
}

pub struct Table<const N: usize> {
    columns: [Column; N],
    lines: Vec<Line<N>>,
}

impl<const N: usize> Table<N> {
    pub fn new(columns: [Column; N]) -> Table<N> {
        Table { columns, lines: Vec::new() }
    }

    pub fn row(&mut self, cells: [String; N]) {
        self.lines.push(Line::Row(cells));
    }

    pub fn note(&mut self, line: String) {
        self.lines.push(Line::Note(line));
    }

    /// The header line, then the rows and notes, each ending in a newline.
    pub fn render(&self) -> String {
        let mut widths = self.columns.map(|c| c.min.max(c.header.chars().count()));
        for line in &self.lines {
            if let Line::Row(cells) = line {
                for (width, cell) in widths.iter_mut().zip(cells) {
                    *width = (*width).max(cell.chars().count());
                }
            }
        }
        let headers = self.columns.map(|c| c.header);
        let mut out = self.render_row(&headers, &widths);
        for line in &self.lines {
            match line {
                Line::Row(cells) => out += &self.render_row(cells, &widths),
                Line::Note(text) => {
                    out += text.trim_end();
                    out.push('\n');
                }
            }
        }
        out
    }

    fn render_row(&self, cells: &[impl AsRef<str>; N], widths: &[usize; N]) -> String {
        let mut line = String::new();
        for (i, ((column, cell), &width)) in
            self.columns.iter().zip(cells).zip(widths.iter()).enumerate()
        {
            let cell = cell.as_ref();
            let pad = " ".repeat(width.saturating_sub(cell.chars().count()));
            match column.align {
                Align::Left => line.extend([cell, pad.as_str()]),
                Align::Right => line.extend([pad.as_str(), cell]),
            }
            if i + 1 < N {
                line.push_str(&" ".repeat(column.gap));
            }
        }
        line.truncate(line.trim_end().len());
        line.push('\n');
        line
    }
}

/// Checks that `text` (a header line, then rows) has each cell of `rows` where its
/// column's header is: a left-aligned cell starts where its header starts, a right-aligned
/// one ends where its header ends; and that no line ends in spaces.
#[cfg(test)]
pub fn assert_lined_up(text: &str, columns: &[Column], rows: &[Vec<String>]) {
    let lines: Vec<Vec<char>> = text.lines().map(|l| l.chars().collect()).collect();
    for line in text.lines() {
        assert_eq!(line, line.trim_end(), "a line ends in spaces:\n{text}");
    }
    let header: String = lines[0].iter().collect();
    let mut from = 0;
    for (c, column) in columns.iter().enumerate() {
        let at = header[from..].find(column.header).expect("the header is there") + from;
        let start = header[..at].chars().count();
        let end = start + column.header.chars().count();
        from = at + column.header.len();
        for (r, cells) in rows.iter().enumerate() {
            let line = &lines[r + 1];
            let cell: Vec<char> = cells[c].chars().collect();
            let (first, last) = match column.align {
                Align::Left => (start, start + cell.len()),
                Align::Right => (end.saturating_sub(cell.len()), end),
            };
            let found: String = line.get(first..last).unwrap_or_default().iter().collect();
            let before = first.checked_sub(1).and_then(|i| line.get(i)).copied();
            let after = line.get(last).copied();
            assert!(
                found == cells[c]
                    && before.is_none_or(|b| b == ' ')
                    && after.is_none_or(|a| a == ' '),
                "column {} of row {r}: {:?} is not at characters {first}..{last}:\n{text}",
                column.header,
                cells[c]
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const COLUMNS: [Column; 3] = [left("NAME", 4), right("COUNT", 3).gap(2), left("NOTE", 0)];

    fn cells(row: [&str; 3]) -> [String; 3] {
        row.map(str::to_owned)
    }

    #[test]
    fn a_long_cell_widens_its_column_and_every_row_follows() {
        let rows = [["a", "1", "x"], ["a-much-longer-name", "123456", ""], ["bb", "22", "yy"]];
        let mut table = Table::new(COLUMNS);
        for row in rows {
            table.row(cells(row));
        }
        let text = table.render();
        assert_eq!(
            text,
            "NAME                COUNT  NOTE\n\
             a                       1  x\n\
             a-much-longer-name 123456\n\
             bb                     22  yy\n"
        );
        let rows: Vec<Vec<String>> = rows.iter().map(|r| cells(*r).to_vec()).collect();
        assert_lined_up(&text, &COLUMNS, &rows);
    }

    #[test]
    fn short_cells_keep_the_minimum_widths_and_notes_widen_nothing() {
        let mut table = Table::new([left("A", 5), right("B", 4), left("C", 0)]);
        table.row(cells(["x", "1", "z"]));
        table.note("  a note longer than every column  ".to_owned());
        let text = table.render();
        assert_eq!(text, "A        B C\nx        1 z\n  a note longer than every column\n");
    }
}
