//! A small, lossless SQL lexer: every byte of the input belongs to exactly one token, so text can
//! be rebuilt from tokens. Used to split statements, to remove `DISTINCT` the way the official
//! Spider script does, and by the query classifiers.

/// What a token is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// A keyword or bare identifier (`SELECT`, `T1`, `name`).
    Word,
    /// A numeric literal (`42`, `3.5`, `1e3`, `0x1F`).
    Number,
    /// A single-quoted string literal, quotes included.
    String,
    /// A quoted identifier: `"x"`, `` `x` `` or `[x]` (SQLite also reads `"x"` as a string when
    /// no column has that name).
    QuotedIdent,
    /// Operators and punctuation other than `;` (`(`, `,`, `>=`, `<>`, `||`, `.`).
    Punct,
    Semicolon,
    Whitespace,
    /// `-- ...` up to the end of the line, or `/* ... */`.
    Comment,
}

/// A token: its kind and its text, borrowed from the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Token<'a> {
    pub kind: TokenKind,
    pub text: &'a str,
}

impl Token<'_> {
    /// True when this is the word `w` (ASCII case-insensitive).
    pub fn is_word(&self, w: &str) -> bool {
        self.kind == TokenKind::Word && self.text.eq_ignore_ascii_case(w)
    }

    /// True for tokens that carry no meaning (white space and comments).
    pub fn is_trivia(&self) -> bool {
        matches!(self.kind, TokenKind::Whitespace | TokenKind::Comment)
    }
}

/// Splits `sql` into tokens. Never fails: an unterminated string or comment runs to the end.
pub fn tokenize(sql: &str) -> Vec<Token<'_>> {
    let bytes = sql.as_bytes();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let start = i;
        let c = bytes[i];
        let kind = match c {
            b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c => {
                while i < bytes.len()
                    && matches!(bytes[i], b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
                {
                    i += 1;
                }
                TokenKind::Whitespace
            }
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
                TokenKind::Comment
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i < bytes.len() && !(bytes[i] == b'*' && bytes.get(i + 1) == Some(&b'/')) {
                    i += 1;
                }
                i = (i + 2).min(bytes.len());
                TokenKind::Comment
            }
            b'\'' => {
                i = skip_quoted(bytes, i, b'\'');
                TokenKind::String
            }
            b'"' | b'`' => {
                i = skip_quoted(bytes, i, c);
                TokenKind::QuotedIdent
            }
            b'[' => {
                while i < bytes.len() && bytes[i] != b']' {
                    i += 1;
                }
                i = (i + 1).min(bytes.len());
                TokenKind::QuotedIdent
            }
            b';' => {
                i += 1;
                TokenKind::Semicolon
            }
            b'0'..=b'9' => {
                i = skip_number(bytes, i);
                TokenKind::Number
            }
            b'.' if bytes.get(i + 1).is_some_and(u8::is_ascii_digit) => {
                i = skip_number(bytes, i);
                TokenKind::Number
            }
            c if c == b'_' || c == b'$' || c.is_ascii_alphabetic() || c >= 0x80 => {
                while i < bytes.len()
                    && (bytes[i] == b'_'
                        || bytes[i] == b'$'
                        || bytes[i].is_ascii_alphanumeric()
                        || bytes[i] >= 0x80)
                {
                    i += 1;
                }
                TokenKind::Word
            }
            _ => {
                let two = &bytes[i..(i + 2).min(bytes.len())];
                i += match two {
                    b">=" | b"<=" | b"!=" | b"<>" | b"==" | b"||" | b"<<" | b">>" => 2,
                    _ => 1,
                };
                TokenKind::Punct
            }
        };
        // All token boundaries fall on ASCII bytes or the end, so slicing is on char boundaries.
        tokens.push(Token {
            kind,
            text: &sql[start..i],
        });
    }
    tokens
}

fn skip_quoted(bytes: &[u8], start: usize, quote: u8) -> usize {
    let mut i = start + 1;
    while i < bytes.len() {
        if bytes[i] == quote {
            if bytes.get(i + 1) == Some(&quote) {
                i += 2; // doubled quote is an escaped quote
                continue;
            }
            return i + 1;
        }
        i += 1;
    }
    bytes.len()
}

fn skip_number(bytes: &[u8], start: usize) -> usize {
    let mut i = start;
    if bytes[i] == b'0' && matches!(bytes.get(i + 1), Some(b'x' | b'X')) {
        i += 2;
        while i < bytes.len() && bytes[i].is_ascii_hexdigit() {
            i += 1;
        }
        return i;
    }
    while i < bytes.len() && (bytes[i].is_ascii_digit() || bytes[i] == b'.') {
        i += 1;
    }
    if i < bytes.len() && matches!(bytes[i], b'e' | b'E') {
        let mut j = i + 1;
        if j < bytes.len() && matches!(bytes[j], b'+' | b'-') {
            j += 1;
        }
        if j < bytes.len() && bytes[j].is_ascii_digit() {
            i = j;
            while i < bytes.len() && bytes[i].is_ascii_digit() {
                i += 1;
            }
        }
    }
    i
}

/// Meaningful tokens only (no white space, no comments).
pub fn significant(sql: &str) -> Vec<Token<'_>> {
    tokenize(sql)
        .into_iter()
        .filter(|t| !t.is_trivia())
        .collect()
}

/// How many statements `sql` holds: `;` separators with something other than white space or
/// comments after them start a new statement.
pub fn statement_count(sql: &str) -> usize {
    let mut count = 0;
    let mut in_statement = false;
    for t in tokenize(sql) {
        match t.kind {
            TokenKind::Semicolon => in_statement = false,
            TokenKind::Whitespace | TokenKind::Comment => {}
            _ => {
                if !in_statement {
                    count += 1;
                    in_statement = true;
                }
            }
        }
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lossless_and_typed() {
        let sql = "SELECT \"a b\", 'it''s', [x y] FROM t -- c\nWHERE x>=1.5e3;";
        let toks = tokenize(sql);
        assert_eq!(toks.iter().map(|t| t.text).collect::<String>(), sql);
        let kinds: Vec<_> = significant(sql).iter().map(|t| (t.kind, t.text)).collect();
        assert!(kinds.contains(&(TokenKind::String, "'it''s'")));
        assert!(kinds.contains(&(TokenKind::QuotedIdent, "[x y]")));
        assert!(kinds.contains(&(TokenKind::Punct, ">=")));
        assert!(kinds.contains(&(TokenKind::Number, "1.5e3")));
    }

    #[test]
    fn counts_statements() {
        assert_eq!(statement_count("SELECT 1"), 1);
        assert_eq!(statement_count("SELECT 1; -- done\n ;"), 1);
        assert_eq!(statement_count("SELECT ';'; SELECT 2"), 2);
        assert_eq!(statement_count("  -- nothing\n"), 0);
    }

    #[test]
    fn non_ascii_words_stay_whole() {
        let toks = significant("SELECT prénom FROM élèves");
        assert_eq!(toks[1].text, "prénom");
        assert_eq!(toks[3].text, "élèves");
    }
}
