//! Explicit schema integration: introspection, value retrieval, filtering, prompts, bad input.
//! Each test builds its own tiny database in a temporary folder; the Spider checks need
//! EXSPIN_DATA.

use std::path::{Path, PathBuf};

use exspin::data::tables::KeyColumns;
use exspin::data::{DatabaseSchema, Example, TablesFile};
use exspin::schema::builder::{PromptBuilder, PromptOptions};
use exspin::schema::features::Question;
use exspin::schema::filter::{FilterConfig, LexicalScorer, SchemaScorer, Scores, select};
use exspin::schema::prompt::Style;
use exspin::schema::values::{MatchConfig, ValueIndex};
use exspin::schema::{SchemaError, gold, introspect};

/// A small concert database: four tables, keys declared in SQL, skewed values.
fn concert_db(dir: &Path) -> PathBuf {
    let db_dir = dir.join("db").join("concert");
    std::fs::create_dir_all(&db_dir).unwrap();
    let path = db_dir.join("concert.sqlite");
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch(
        "CREATE TABLE stadium (stadium_id INTEGER PRIMARY KEY, name TEXT, capacity INT);
         CREATE TABLE singer (singer_id INTEGER PRIMARY KEY, name TEXT, country TEXT, age INT);
         CREATE TABLE concert (concert_id INTEGER PRIMARY KEY, concert_name TEXT, year TEXT,
                               stadium_id INT REFERENCES stadium(stadium_id));
         CREATE TABLE singer_in_concert (concert_id INT, singer_id INT,
             PRIMARY KEY (concert_id, singer_id),
             FOREIGN KEY (concert_id) REFERENCES concert(concert_id),
             FOREIGN KEY (singer_id) REFERENCES singer(singer_id));
         INSERT INTO stadium VALUES (1, 'Hampden Park', 52500), (2, 'Glebe Park', 3960);
         INSERT INTO singer VALUES (1, 'Joe Sharp', 'Netherlands', 52), (2, 'Timbaland', 'United States', 32),
             (3, 'Justin Brown', 'France', 29), (4, 'Rose White', 'France', 41), (5, 'Ed Sheldon', 'France', 43);
         INSERT INTO concert VALUES (1, 'Auditions', '2014', 1), (2, 'Super bootcamp', '2014', 2),
             (3, 'Home Visits', '2015', 1);
         INSERT INTO singer_in_concert VALUES (1, 2), (1, 3), (2, 3), (3, 5);",
    )
    .unwrap();
    path
}

fn builder(cache: &Path, root: &Path, tables: TablesFile, options: PromptOptions) -> PromptBuilder {
    PromptBuilder::new(cache, root, tables, Box::new(LexicalScorer), options)
}

fn example(db: &str, question: &str) -> Example {
    Example {
        id: "t-0".into(),
        db_id: db.into(),
        question: question.into(),
        evidence: String::new(),
        gold_sql: "SELECT 1".into(),
    }
}

/// Compares `text` with `tests/snapshots/NAME`; `EXSPIN_UPDATE_SNAPSHOTS=1` rewrites the file.
fn assert_snapshot(name: &str, text: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/snapshots")
        .join(name);
    if std::env::var_os("EXSPIN_UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(&path, text).unwrap();
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (run with EXSPIN_UPDATE_SNAPSHOTS=1 to create it)",
            path.display()
        )
    });
    assert_eq!(text, expected, "prompt differs from {}", path.display());
}

#[test]
fn introspects_keys_types_values_and_row_counts() {
    let dir = tempfile::tempdir().unwrap();
    let path = concert_db(dir.path());
    let info = introspect::introspect(&path, None).unwrap();
    let names: Vec<&str> = info.tables.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["stadium", "singer", "concert", "singer_in_concert"]);
    let singer = &info.tables[1];
    assert_eq!(singer.rows, 5);
    assert!(singer.columns[0].primary_key);
    assert_eq!(singer.columns[3].ty, "INT");
    // Most frequent first: France appears three times.
    assert_eq!(singer.columns[2].values[0], "France");
    let sic = &info.tables[3];
    assert!(sic.columns.iter().all(|c| c.primary_key), "composite key");
    assert_eq!(info.foreign_keys.len(), 3);
    let fk = info
        .foreign_keys
        .iter()
        .find(|f| f.from_table == 2)
        .unwrap();
    assert_eq!((fk.to_table, fk.to_column), (0, 0));
}

#[test]
fn merges_natural_names_and_declared_keys_from_tables_json() {
    let dir = tempfile::tempdir().unwrap();
    let path = concert_db(dir.path());
    let declared = DatabaseSchema {
        db_id: "concert".into(),
        table_names: vec!["arena".into(), "performer".into()],
        table_names_original: vec!["Stadium".into(), "singer".into()],
        column_names: vec![
            (-1, "*".into()),
            (0, "arena id".into()),
            (1, "home nation".into()),
        ],
        column_names_original: vec![
            (-1, "*".into()),
            (0, "stadium_id".into()),
            (1, "country".into()),
        ],
        column_types: vec!["text".into(), "number".into(), "text".into()],
        primary_keys: vec![KeyColumns::One(1)],
        // Declared only here: singer.country -> stadium.stadium_id (nonsense, but it must merge).
        foreign_keys: vec![(2, 1)],
    };
    let info = introspect::introspect(&path, Some(&declared)).unwrap();
    assert_eq!(info.tables[0].name, "stadium", "the file's spelling wins");
    assert_eq!(info.tables[0].natural, "arena");
    assert_eq!(info.tables[1].natural, "performer");
    assert_eq!(info.tables[1].columns[2].natural, "home nation");
    assert!(
        info.foreign_keys
            .iter()
            .any(|f| (f.from_table, f.from_column, f.to_table) == (1, 2, 0))
    );
}

#[test]
fn cache_is_keyed_by_content_and_rebuilt_when_the_database_changes() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let path = concert_db(dir.path());
    let a = introspect::load_cached(&cache, &path, None).unwrap();
    let (_, built) = ValueIndex::open_or_build(&cache, &path, &a).unwrap();
    assert!(built);
    let (_, built) = ValueIndex::open_or_build(&cache, &path, &a).unwrap();
    assert!(!built, "second open reads the cache");
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute(
            "INSERT INTO singer VALUES (6, 'Kylie', 'Australia', 50)",
            [],
        )
        .unwrap();
    let b = introspect::load_cached(&cache, &path, None).unwrap();
    assert_ne!(a.content_hash, b.content_hash);
    assert_eq!(b.tables[1].rows, 6);
    let (index, built) = ValueIndex::open_or_build(&cache, &path, &b).unwrap();
    assert!(built, "a changed database gets a new index");
    let found = index.search("Singers from Australia?", &MatchConfig::default());
    assert_eq!(found[0].value, "Australia");
}

#[test]
fn value_retrieval_keeps_only_values_in_the_question() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let path = concert_db(dir.path());
    let info = introspect::load_cached(&cache, &path, None).unwrap();
    let (index, _) = ValueIndex::open_or_build(&cache, &path, &info).unwrap();
    let found = index.search(
        "Which singers from france performed at hampden park?",
        &MatchConfig::default(),
    );
    let pairs: Vec<(usize, usize, &str)> = found
        .iter()
        .map(|m| (m.table, m.column, m.value.as_str()))
        .collect();
    assert!(pairs.contains(&(1, 2, "France")), "{pairs:?}");
    assert!(pairs.contains(&(0, 1, "Hampden Park")), "{pairs:?}");
    assert!(
        !pairs.iter().any(|p| p.2 == "Glebe Park"),
        "shares only 'park': {pairs:?}"
    );
    // "Ed Sheldon" shares the word "ed" with nothing here; "edited" must not match "Ed".
    assert!(
        index
            .search("Who edited the list?", &MatchConfig::default())
            .is_empty()
    );
    let loose = MatchConfig {
        threshold: 0.5,
        ..MatchConfig::default()
    };
    assert!(
        !index.search("singer called justin", &loose).is_empty(),
        "half of 'Justin Brown'"
    );
    assert!(
        index
            .search("singer called justin", &MatchConfig::default())
            .is_empty()
    );
}

#[test]
fn filter_keeps_join_keys_and_pads_reproducibly() {
    let dir = tempfile::tempdir().unwrap();
    let path = concert_db(dir.path());
    let info = introspect::introspect(&path, None).unwrap();
    let q = Question::new(
        "What are the names of singers and the concert names they sang in?",
        "",
        &[],
    );
    let scores = LexicalScorer.score(&info, &q);
    let cfg = FilterConfig {
        k1: 3,
        k2: 1,
        seed: 7,
        random_padding: true,
    };
    let sel = select(
        &info,
        &scores,
        LexicalScorer.relevance_threshold(),
        &cfg,
        q.text,
    );
    assert!(sel.has_table(1) && sel.has_table(2), "{sel:?}");
    // k2 = 1 keeps one scored column, yet the keys joining the kept tables stay.
    for fk in &info.foreign_keys {
        if sel.has_table(fk.from_table) && sel.has_table(fk.to_table) {
            assert!(
                sel.has_column(fk.from_table, fk.from_column)
                    && sel.has_column(fk.to_table, fk.to_column)
            );
        }
    }
    // Padding: nothing is relevant, so k1 tables are drawn at random, the same way every time.
    let flat = Scores {
        tables: vec![0.0; 4],
        columns: info
            .tables
            .iter()
            .map(|t| vec![0.0; t.columns.len()])
            .collect(),
    };
    let cfg = FilterConfig { k1: 2, ..cfg };
    let draw = |seed| {
        let s = select(&info, &flat, 0.5, &FilterConfig { seed, ..cfg }, "q");
        s.tables.iter().map(|k| k.table).collect::<Vec<_>>()
    };
    assert_eq!(draw(1), draw(1));
    assert_eq!(draw(1).len(), 2);
    let distinct: std::collections::BTreeSet<Vec<usize>> = (0..20).map(draw).collect();
    assert!(distinct.len() > 1, "padding must depend on the seed");
}

#[test]
fn gold_usage_resolves_aliases_and_bare_columns() {
    let dir = tempfile::tempdir().unwrap();
    let info = introspect::introspect(&concert_db(dir.path()), None).unwrap();
    let sql = "SELECT T2.concert_name, count(*) FROM singer_in_concert AS T1 JOIN concert AS T2 \
               ON T1.concert_id = T2.concert_id WHERE year = '2014' GROUP BY T2.concert_id";
    let u = gold::usage(sql, &info);
    assert_eq!(u.tables.iter().copied().collect::<Vec<_>>(), [2, 3]);
    let cols: Vec<(usize, usize)> = u.columns.iter().copied().collect();
    assert_eq!(cols, [(2, 0), (2, 1), (2, 2), (3, 0)]);
    assert_eq!(
        gold::string_literals(
            "SELECT * FROM singer WHERE country = 'France' OR name LIKE \"%Sharp%\""
        ),
        ["France", "Sharp"]
    );
}

fn snapshot_builder(dir: &Path, style: Style) -> PromptBuilder {
    concert_db(dir);
    let options = PromptOptions {
        filter: FilterConfig {
            k1: 2,
            k2: 3,
            seed: 0,
            random_padding: true,
        },
        style,
        ..PromptOptions::default()
    };
    builder(
        &dir.join("cache"),
        &dir.join("db"),
        TablesFile::default(),
        options,
    )
}

#[test]
fn explicit_prompt_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let b = snapshot_builder(dir.path(), Style::Explicit);
    let built = b
        .build(&example(
            "concert",
            "How many singers from France are older than 40?",
        ))
        .unwrap();
    assert!(
        built
            .prompt
            .text
            .ends_with("-- Question: How many singers from France are older than 40?\n")
    );
    assert!(built.prompt.text[..built.prompt.schema_len].starts_with("-- Database: concert\n"));
    assert_snapshot("schema_explicit.txt", &built.prompt.text);
    // Deterministic: a second build (warm caches) gives the same bytes.
    let again = b
        .build(&example(
            "concert",
            "How many singers from France are older than 40?",
        ))
        .unwrap();
    assert_eq!(built.prompt, again.prompt);
}

#[test]
fn explicit_prompt_without_representative_values_keeps_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = snapshot_builder(dir.path(), Style::Explicit);
    let q = example("concert", "How many singers from France are older than 40?");
    let full = b.build(&q).unwrap().prompt.text;
    b.options_mut().representative_values = false;
    let short = b.build(&q).unwrap().prompt.text;
    assert!(full.contains("-- e.g."), "{full}");
    assert!(!short.contains("-- e.g."), "{short}");
    assert!(short.len() < full.len());
    // Filtering, keys and the matched value stay.
    for kept in [
        "CREATE TABLE singer (",
        "PRIMARY KEY",
        "-- singer.country = 'France'",
        "-- Question: How many singers",
    ] {
        assert!(short.contains(kept), "{kept} missing from\n{short}");
    }
    assert!(!short.contains("CREATE TABLE stadium"), "{short}");
}

#[test]
fn plain_full_schema_prompt_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let b = snapshot_builder(dir.path(), Style::Plain);
    let built = b
        .build(&example(
            "concert",
            "How many singers from France are older than 40?",
        ))
        .unwrap();
    assert_eq!(built.selection.tables.len(), 4);
    assert_snapshot("schema_plain.txt", &built.prompt.text);
}

/// The rows prompt: every table's CREATE TABLE with keys, then its first rows (3 by default,
/// NULL spelled out, fewer when the table has fewer), through the one prompt renderer.
#[test]
fn rows_prompt_snapshot() {
    use exspin::prompt::{SchemaMode, SchemaPrompts};
    let dir = tempfile::tempdir().unwrap();
    let b = snapshot_builder(dir.path(), Style::Plain);
    let conn = rusqlite::Connection::open(dir.path().join("db/concert/concert.sqlite")).unwrap();
    conn.execute("INSERT INTO stadium VALUES (3, NULL, 100)", [])
        .unwrap();
    drop(conn);
    let prompts = SchemaPrompts::builder(b, SchemaMode::Rows);
    assert_eq!(prompts.mode(), SchemaMode::Rows);
    let q = example("concert", "How many singers from France are older than 40?");
    let text = prompts.schema_prompt(&q).unwrap();
    assert!(
        text.contains(
            "/*\n3 example rows:\nSELECT * FROM stadium LIMIT 3;\nstadium_id\tname\tcapacity\n\
             1\tHampden Park\t52500\n2\tGlebe Park\t3960\n3\tNULL\t100\n*/\n"
        ),
        "{text}"
    );
    assert_eq!(text.matches("example rows:").count(), 4, "{text}");
    assert_snapshot("schema_rows.txt", &text);
    // Plain turns rows off again; the mode and the text cannot disagree.
    let exspin::prompt::SchemaSource::Builder(b) = prompts.source else {
        unreachable!()
    };
    let plain = SchemaPrompts::builder(*b, SchemaMode::Plain);
    assert!(!plain.schema_prompt(&q).unwrap().contains("example rows"));
}

/// Few-shot examples go between the schema and the question, so the schema stays the prompt's
/// prefix (shared by a database's questions); never from the question's own database.
#[test]
fn shots_sit_between_the_schema_and_the_question() {
    use exspin::data::{Example, TablesFile};
    use exspin::prompt::{SchemaMode, SchemaPrompts, ShotPool};
    let dir = tempfile::tempdir().unwrap();
    let q = example("concert", "How many singers from France are older than 40?");
    let plain =
        SchemaPrompts::builder(snapshot_builder(dir.path(), Style::Plain), SchemaMode::Rows);
    let without = plain.schema_prompt(&q).unwrap();
    let ex = |id: &str, db: &str, question: &str, sql: &str| Example {
        id: id.into(),
        db_id: db.into(),
        question: question.into(),
        evidence: String::new(),
        gold_sql: sql.into(),
    };
    let pool = ShotPool::new(
        vec![
            ex(
                "t0",
                "concert",
                "How many singers are older than 40?",
                "SELECT 0",
            ),
            ex(
                "t1",
                "zoo",
                "How many cats from Spain are older than 3?",
                "SELECT  count(*) FROM cat",
            ),
            ex("t2", "zoo", "List all keepers.", "SELECT name FROM keeper"),
        ],
        &TablesFile::default(),
    );
    let exspin::prompt::SchemaSource::Builder(b) = plain.source else {
        unreachable!()
    };
    let with = SchemaPrompts::builder(*b, SchemaMode::Rows).with_shots(pool, 1);
    assert_eq!(with.shots(), 1);
    let text = with.schema_prompt(&q).unwrap();
    let question = "-- Question: How many singers from France are older than 40?\n";
    assert!(text.ends_with(question), "{text}");
    let schema = without.strip_suffix(question).unwrap();
    assert!(text.starts_with(schema), "the schema part is unchanged");
    assert_eq!(
        &text[schema.len()..text.len() - question.len()],
        "-- Examples from other databases:\n\
         -- Question: How many cats from Spain are older than 3?\n\
         -- SQL: SELECT count(*) FROM cat;\n\n"
    );
}

/// Example rows inside the integrated prompt: only the kept tables, only their kept columns.
#[test]
fn integrated_prompt_with_rows_shows_the_kept_columns_only() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = snapshot_builder(dir.path(), Style::Explicit);
    b.options_mut().example_rows = 2;
    b.options_mut().representative_values = false;
    let built = b
        .build(&example(
            "concert",
            "How many singers from France are older than 40?",
        ))
        .unwrap();
    let text = &built.prompt.text;
    let singer = built
        .selection
        .tables
        .iter()
        .find(|t| t.table == 1)
        .expect("singer kept");
    assert!(singer.columns.len() < 4, "k2 = 3 drops a column: {text}");
    assert!(!text.contains("CREATE TABLE stadium"), "{text}");
    assert!(!text.contains("FROM stadium LIMIT"), "{text}");
    let block = text
        .split("/*\n2 example rows:\nSELECT ")
        .find(|b| b.contains(" FROM singer LIMIT 2;"))
        .unwrap_or_else(|| panic!("no singer rows in\n{text}"));
    let header = block.lines().nth(1).unwrap();
    assert_eq!(header.split('\t').count(), singer.columns.len(), "{text}");
    assert!(!block.starts_with('*'), "a projection, not *: {block}");
    assert!(block.contains("Joe Sharp"), "{block}");
}

#[test]
fn unreadable_database_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.sqlite");
    std::fs::write(
        &path,
        b"this is not an sqlite file, just text that is long enough to matter.....",
    )
    .unwrap();
    let err = introspect::introspect(&path, None).unwrap_err();
    assert!(matches!(err, SchemaError::Sqlite { .. }), "{err}");
    assert!(err.to_string().contains("broken.sqlite"), "{err}");
    let err = introspect::introspect(&dir.path().join("absent.sqlite"), None).unwrap_err();
    assert!(matches!(err, SchemaError::MissingDatabase { .. }), "{err}");
}

#[test]
fn table_declared_but_absent_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = concert_db(dir.path());
    let declared = DatabaseSchema {
        db_id: "concert".into(),
        table_names: vec!["ghost".into()],
        table_names_original: vec!["ghost".into()],
        column_names: vec![],
        column_names_original: vec![],
        column_types: vec![],
        primary_keys: vec![],
        foreign_keys: vec![],
    };
    let err = introspect::introspect(&path, Some(&declared)).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, SchemaError::TableMissing { .. }));
    assert!(
        text.contains("ghost") && text.contains("singer_in_concert"),
        "{text}"
    );
}

#[test]
fn empty_database_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("empty.sqlite");
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch("PRAGMA user_version = 1;")
        .unwrap();
    let err = introspect::introspect(&path, None).unwrap_err();
    assert!(matches!(err, SchemaError::EmptyDatabase { .. }), "{err}");
}

#[test]
fn tables_without_rows_still_give_a_prompt() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db").join("e");
    std::fs::create_dir_all(&db).unwrap();
    rusqlite::Connection::open(db.join("e.sqlite"))
        .unwrap()
        .execute_batch("CREATE TABLE t (a TEXT, b INT);")
        .unwrap();
    let b = builder(
        &dir.path().join("cache"),
        &dir.path().join("db"),
        TablesFile::default(),
        PromptOptions::default(),
    );
    let built = b.build(&example("e", "how many rows are in t?")).unwrap();
    assert!(
        built
            .prompt
            .text
            .contains("CREATE TABLE t (\n  a TEXT,\n  b INT\n); -- 0 rows\n"),
        "{}",
        built.prompt.text
    );
}

#[test]
fn non_utf8_values_are_replaced_not_fatal() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db").join("bytes");
    std::fs::create_dir_all(&db).unwrap();
    let conn = rusqlite::Connection::open(db.join("bytes.sqlite")).unwrap();
    conn.execute_batch("CREATE TABLE city (name TEXT);")
        .unwrap();
    // Latin-1 "Zürich": 0xFC is not UTF-8. CAST keeps the bytes while typing them as text.
    conn.execute(
        "INSERT INTO city VALUES (CAST(X'5AFC72696368' AS TEXT))",
        [],
    )
    .unwrap();
    conn.execute("INSERT INTO city VALUES ('Bern')", [])
        .unwrap();
    drop(conn);
    let b = builder(
        &dir.path().join("cache"),
        &dir.path().join("db"),
        TablesFile::default(),
        PromptOptions::default(),
    );
    let built = b
        .build(&example("bytes", "Which city is Z\u{fffd}rich or Bern?"))
        .unwrap();
    assert!(
        built.prompt.text.contains("Z\u{fffd}rich"),
        "{}",
        built.prompt.text
    );
    assert!(built.values.iter().any(|m| m.value == "Bern"));
}

#[test]
fn huge_question_gives_a_bounded_prompt() {
    let dir = tempfile::tempdir().unwrap();
    let b = snapshot_builder(dir.path(), Style::Explicit);
    let question = "singer france concert stadium ".repeat(334); // ~10,000 characters
    assert!(question.len() >= 10_000);
    let start = std::time::Instant::now();
    let built = b.build(&example("concert", &question)).unwrap();
    assert!(
        built.prompt.text.len() < 6_000,
        "{} bytes",
        built.prompt.text.len()
    );
    assert!(built.prompt.text.contains("-- Question: singer france"));
    // Generous: this guards against quadratic blow-up, not a speed target.
    assert!(start.elapsed().as_secs() < 10);
}

#[test]
fn token_budget_is_met_by_dropping_detail_then_tables() {
    let Some(tok) = std::env::var_os("EXSPIN_TOKENIZER")
        .map(PathBuf::from)
        .filter(|p| p.is_file())
    else {
        eprintln!("SKIP token budget: set EXSPIN_TOKENIZER to a tokenizer.json");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    concert_db(dir.path());
    let counter = || exspin::schema::tokens::TokenCounter::from_file(&tok).unwrap();
    let make = |budget| {
        let options = PromptOptions {
            filter: FilterConfig {
                k1: 4,
                ..FilterConfig::default()
            },
            token_budget: budget,
            ..PromptOptions::default()
        };
        builder(
            &dir.path().join("cache"),
            &dir.path().join("db"),
            TablesFile::default(),
            options,
        )
        .with_tokenizer(counter())
    };
    let ex = example(
        "concert",
        "Which singers from France sang in a concert at Hampden Park?",
    );
    let full = make(None).build(&ex).unwrap();
    let full_tokens = counter().count(&full.prompt.text);
    for budget in [full_tokens - 20, full_tokens / 2] {
        let built = make(Some(budget)).build(&ex).unwrap();
        let n = counter().count(&built.prompt.text);
        assert!(n <= budget, "{n} tokens > budget {budget}");
        assert!(built.prompt.text.ends_with("Hampden Park?\n"));
    }
}

/// Recall of the lexical filter on the first Spider dev questions: a regression guard well below
/// the measured figure (BENCHMARKS.md, schema section), so it fails only when filtering breaks.
#[test]
fn spider_dev_lexical_filter_keeps_gold_tables() {
    let Some(dir) = crate::util::spider_dir("schema recall") else {
        return;
    };
    let cache = tempfile::tempdir().unwrap();
    let mut dataset = exspin::data::spider::load(&dir, "dev").unwrap();
    dataset.truncate(200);
    let tables = exspin::schema::builder::tables_file_for(&dataset).unwrap();
    let options = PromptOptions {
        filter: FilterConfig {
            k1: 4,
            k2: 10,
            seed: 0,
            random_padding: true,
        },
        ..PromptOptions::default()
    };
    let b = builder(cache.path(), &dataset.database_root, tables, options);
    let report = exspin::schema::evaluate::recall(&b, &dataset, &|| {}).unwrap();
    assert_eq!(report.examples, dataset.evaluable_count());
    assert!(report.tables_all_kept >= 0.85, "{report:?}");
    assert!(report.columns_all_kept >= 0.75, "{report:?}");
    assert!(report.value_recall > 0.3, "{report:?}");
}

/// Trains the learned scorer on part of Spider train and checks it ranks dev tables at least
/// about as well as the lexical one it is built from.
#[test]
fn spider_learned_scorer_trains_and_filters() {
    let Some(dir) = crate::util::spider_dir("learned scorer") else {
        return;
    };
    let cache = tempfile::tempdir().unwrap();
    let mut train = exspin::data::spider::load(&dir, "train").unwrap();
    train.truncate(1500);
    let tables = exspin::schema::builder::tables_file_for(&train).unwrap();
    let b = builder(
        cache.path(),
        &train.database_root,
        tables.clone(),
        PromptOptions::default(),
    );
    let set = exspin::schema::evaluate::training_set(&b, &train, None, &|| {}).unwrap();
    assert!(set.examples > 1000);
    let model = set.fit("test");
    let path = exspin::schema::learned::model_path(cache.path());
    model.save(&path).unwrap();
    let loaded = exspin::schema::learned::LearnedScorer::load(&path).unwrap();
    let mut dev = exspin::data::spider::load(&dir, "dev").unwrap();
    dev.truncate(200);
    let measure = |scorer: Box<dyn SchemaScorer>| {
        let b = PromptBuilder::new(
            cache.path(),
            &dev.database_root,
            tables.clone(),
            scorer,
            PromptOptions::default(),
        );
        exspin::schema::evaluate::recall(&b, &dev, &|| {}).unwrap()
    };
    let learned = measure(Box::new(loaded));
    let lexical = measure(Box::new(LexicalScorer));
    assert_eq!(learned.scorer, "learned");
    assert!(
        learned.tables_all_kept >= lexical.tables_all_kept - 0.03,
        "{learned:?} vs {lexical:?}"
    );
    assert!(learned.columns_all_kept >= 0.75, "{learned:?}");
}
