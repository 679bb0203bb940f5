//! Random edits of a text, for the property tests of parsers (`*_props`): a valid input cut,
//! added to and repeated at random places reaches the parser's corners that random text
//! does not.
use proptest::prelude::*;

/// One edit: what (cut, insert, repeat), two places (taken modulo the length, moved back to
/// a character boundary) and what an insert inserts.
pub type Edit = (u8, usize, usize, String);

pub fn edits(pieces: impl Strategy<Value = String>) -> impl Strategy<Value = Vec<Edit>> {
    prop::collection::vec((any::<u8>(), any::<usize>(), any::<usize>(), pieces), 1..6)
}

fn at_char(text: &str, at: usize) -> usize {
    let mut at = at % (text.len() + 1);
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

/// `text` with `edits` applied in order.
pub fn apply(mut text: String, edits: &[Edit]) -> String {
    for (kind, a, b, piece) in edits {
        let (a, b) = (at_char(&text, *a), at_char(&text, *b));
        let (from, to) = (a.min(b), a.max(b));
        match kind % 3 {
            0 => text.replace_range(from..to, ""),
            1 => text.insert_str(a, piece),
            _ => {
                let copy = text[from..to].to_owned();
                text.insert_str(to, &copy);
            }
        }
    }
    text
}

/// Pieces that break TOML and JSON in interesting ways, or any text.
pub fn syntax_pieces() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        prop::sample::select(vec![
            "\"",
            "'",
            "[",
            "]",
            "=",
            "\n",
            ",",
            "#",
            "'''",
            "\"\"\"",
            "{",
            "}",
            ":",
            "0",
            "-",
            ".",
            "1e999",
            "nan",
            "-inf",
            "null",
            "true",
            "99999999999999999999",
            "\\u0000",
            "\\ud800",
            "\\",
            "/",
            "[[x]]",
            "a.b.c = 1",
            "format = 1",
            "[envelope]",
            "<n>",
            "<bad>",
            "port",
        ])
        .prop_map(str::to_owned),
    ]
}
