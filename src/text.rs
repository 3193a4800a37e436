//! Text for a terminal of a given width.

/// A word too long for a line, cut after `.`, `/`, `[` or `,` where it
/// can be (a field path, an image), else at the line's end.
fn split_long(word: &str, room: usize) -> Vec<String> {
    let mut pieces = Vec::new();
    let mut rest: Vec<char> = word.chars().collect();
    while rest.len() > room {
        let cut = rest[..room]
            .iter()
            .rposition(|c| matches!(c, '.' | '/' | '[' | ','))
            .map(|i| i + 1)
            .filter(|i| *i > room / 3)
            .unwrap_or(room);
        pieces.push(rest[..cut].iter().collect());
        rest = rest[cut..].to_vec();
    }
    pieces.push(rest.into_iter().collect());
    pieces
}

/// `text` broken at spaces into lines of at most `width` characters, the
/// lines after the first indented by `indent`; a word longer than a line
/// is cut where it has a natural break.
pub fn wrap(text: &str, first: usize, width: usize, indent: usize) -> String {
    let mut out = String::new();
    let mut room = width.saturating_sub(first).max(20);
    let mut used = 0;
    let full = width.saturating_sub(indent).max(20);
    let words = text
        .split(' ')
        .filter(|w| !w.is_empty())
        .flat_map(|w| split_long(w, full));
    for word in words {
        let word = word.as_str();
        let len = word.chars().count();
        if used > 0 && used + 1 + len > room {
            out.push('\n');
            out.push_str(&" ".repeat(indent));
            room = width.saturating_sub(indent).max(20);
            used = 0;
        } else if used > 0 {
            out.push(' ');
            used += 1;
        }
        out.push_str(word);
        used += len;
    }
    out
}
