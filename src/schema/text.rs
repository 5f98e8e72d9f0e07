//! Text helpers shared by the scorers and the value matcher: word splitting that understands
//! `snake_case` and `camelCase` names, a crude stemmer, stop words, and longest common substring.

/// Words a question uses for grammar, not content; matching them to names only adds noise.
const STOP_WORDS: &[&str] = &[
    "a",
    "an",
    "the",
    "of",
    "in",
    "on",
    "for",
    "to",
    "and",
    "or",
    "is",
    "are",
    "was",
    "were",
    "be",
    "by",
    "with",
    "what",
    "which",
    "who",
    "whom",
    "whose",
    "how",
    "many",
    "much",
    "list",
    "show",
    "give",
    "find",
    "return",
    "all",
    "each",
    "every",
    "that",
    "this",
    "these",
    "those",
    "there",
    "their",
    "its",
    "it",
    "as",
    "at",
    "from",
    "me",
    "do",
    "does",
    "did",
    "have",
    "has",
    "had",
    "than",
    "more",
    "less",
    "most",
    "least",
    "number",
    "count",
    "name",
    "names",
    "id",
    "ids",
    "different",
    "distinct",
    "please",
    "tell",
    "also",
    "not",
    "no",
    "any",
    "some",
    "only",
    "both",
    "where",
    "when",
    "whose",
    "them",
    "they",
    "we",
    "you",
    "i",
    "s",
    "if",
    "then",
    "order",
    "sorted",
    "sort",
    "descending",
    "ascending",
    "average",
    "total",
    "maximum",
    "minimum",
    "max",
    "min",
    "sum",
    "avg",
    "between",
    "greater",
    "larger",
    "smaller",
    "highest",
    "lowest",
];

pub fn is_stop_word(w: &str) -> bool {
    STOP_WORDS.contains(&w)
}

/// Lower-case words of `text`: split on anything not alphanumeric and on camelCase boundaries.
pub fn words(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut prev_lower = false;
    for c in text.chars() {
        if c.is_alphanumeric() {
            // `StudentId` -> student, id; but `ID` and `HTML` stay whole.
            if c.is_uppercase() && prev_lower && !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            prev_lower = c.is_lowercase() || c.is_ascii_digit();
            cur.extend(c.to_lowercase());
        } else {
            prev_lower = false;
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// A crude stemmer: enough to make `singers`/`singer` and `countries`/`country` meet.
pub fn stem(w: &str) -> String {
    let n = w.chars().count();
    if n > 4 && w.ends_with("ies") {
        format!("{}y", &w[..w.len() - 3])
    } else if n > 4 && (w.ends_with("ses") || w.ends_with("xes") || w.ends_with("ches")) {
        w[..w.len() - 2].to_string()
    } else if n > 3 && w.ends_with('s') && !w.ends_with("ss") && !w.ends_with("us") {
        w[..w.len() - 1].to_string()
    } else {
        w.to_string()
    }
}

/// Stemmed content words of `text` (stop words removed).
pub fn content_stems(text: &str) -> Vec<String> {
    words(text)
        .into_iter()
        .filter(|w| !is_stop_word(w))
        .map(|w| stem(&w))
        .collect()
}

/// How well two stemmed words match: 1 for equal, less for a shared long prefix or one edit.
pub fn word_similarity(a: &str, b: &str) -> f32 {
    if a == b {
        return 1.0;
    }
    let (la, lb) = (a.chars().count(), b.chars().count());
    if la < 3 || lb < 3 {
        return 0.0;
    }
    let prefix = a.chars().zip(b.chars()).take_while(|(x, y)| x == y).count();
    if prefix >= 4 && prefix * 10 >= la.max(lb) * 6 {
        return 0.8;
    }
    if la >= 5 && lb >= 5 && la.abs_diff(lb) <= 1 && edit_distance_at_most_one(a, b) {
        return 0.7;
    }
    0.0
}

fn edit_distance_at_most_one(a: &str, b: &str) -> bool {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let (mut i, mut j, mut edits) = (0, 0, 0);
    while i < a.len() && j < b.len() {
        if a[i] == b[j] {
            i += 1;
            j += 1;
            continue;
        }
        edits += 1;
        if edits > 1 {
            return false;
        }
        match a.len().cmp(&b.len()) {
            std::cmp::Ordering::Greater => i += 1,
            std::cmp::Ordering::Less => j += 1,
            std::cmp::Ordering::Equal => {
                i += 1;
                j += 1;
            }
        }
    }
    edits + (a.len() - i) + (b.len() - j) <= 1
}

/// How much of the name (its stemmed words) the question covers, in [0, 1]: the mean over the
/// name's words of their best match among the question's words. A name whose words all appear
/// gets 1; consecutive matches (an n-gram of the question) are what gives multi-word names 1.
pub fn name_coverage(name_stems: &[String], question_stems: &[String]) -> f32 {
    let content: Vec<&String> = name_stems.iter().filter(|w| !is_stop_word(w)).collect();
    if content.is_empty() {
        return 0.0;
    }
    let total: f32 = content
        .iter()
        .map(|n| {
            question_stems
                .iter()
                .map(|q| word_similarity(n, q))
                .fold(0.0, f32::max)
        })
        .sum();
    total / content.len() as f32
}

/// Length in characters of the longest common substring of `a` and `b` (both already lower-cased),
/// and where it ends in `b`. Quadratic, so callers bound the lengths.
pub fn longest_common_substring(a: &[char], b: &[char]) -> (usize, usize) {
    let mut prev = vec![0usize; b.len() + 1];
    let mut cur = vec![0usize; b.len() + 1];
    let (mut best, mut end) = (0, 0);
    for &ca in a {
        for j in 1..=b.len() {
            cur[j] = if ca == b[j - 1] { prev[j - 1] + 1 } else { 0 };
            if cur[j] > best {
                best = cur[j];
                end = j;
            }
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    (best, end)
}

/// Cuts `s` to at most `max` characters (on a char boundary), marking the cut with `…`.
pub fn truncate_chars(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(max).collect();
        t.push('…');
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_snake_and_camel_case() {
        assert_eq!(words("Singer_in_concert"), ["singer", "in", "concert"]);
        assert_eq!(words("StudentID"), ["student", "id"]);
        assert_eq!(words("HTML page"), ["html", "page"]);
    }

    #[test]
    fn stems_plurals() {
        assert_eq!(stem("countries"), "country");
        assert_eq!(stem("singers"), "singer");
        assert_eq!(stem("address"), "address");
    }

    #[test]
    fn fuzzy_words() {
        assert_eq!(word_similarity("singer", "singer"), 1.0);
        assert!(word_similarity("nationality", "national") > 0.0);
        // A shared prefix must cover most of the longer word: "nation" is 6 of 11 letters.
        assert_eq!(word_similarity("nationality", "nation"), 0.0);
        assert!(word_similarity("colour", "color") > 0.0);
        assert_eq!(word_similarity("cat", "dog"), 0.0);
    }

    #[test]
    fn lcs_finds_the_span() {
        let a: Vec<char> = "france".chars().collect();
        let b: Vec<char> = "singers from france?".chars().collect();
        assert_eq!(longest_common_substring(&a, &b), (6, 19));
    }
}
