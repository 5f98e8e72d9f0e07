//! The hardness unit tests: the parser and the rules on hand-written queries, the parsed-JSON reader
//! on hand-written records.

use super::*;
use proptest::prelude::*;

fn parts(sql: &str) -> (usize, usize, usize) {
    let c = Components::of(&parse(sql).unwrap_or_else(|e| panic!("{sql}: {e}")));
    (c.component1, c.component2, c.others)
}

fn level(sql: &str) -> Hardness {
    hardness(sql).unwrap_or_else(|e| panic!("{sql}: {e}"))
}

#[test]
fn count_star_is_a_select_level_aggregate_and_easy() {
    let sql = parse("SELECT count(*) FROM singer").unwrap();
    assert_eq!(sql.select.len(), 1);
    assert_eq!(sql.select[0].0, Agg::Count);
    assert_eq!(sql.select[0].1.left.agg, Agg::None);
    assert_eq!(sql.select[0].1.left.col, Column::Star);
    assert_eq!(parts("SELECT count(*) FROM singer"), (0, 0, 0));
    assert_eq!(level("SELECT count(*) FROM singer"), Hardness::Easy);
}

#[test]
fn aggregates_outside_select_live_on_the_column_unit() {
    let sql = parse("SELECT a FROM t GROUP BY a HAVING count(DISTINCT b) > 1").unwrap();
    let having = &sql.having.units()[0];
    assert_eq!(having.val_unit.left.agg, Agg::Count);
    assert!(having.val_unit.left.distinct);
    // ... where `count_agg(having)` does not look (it reads not_op), so no aggregate counts.
    assert_eq!(
        parts("SELECT a FROM t GROUP BY a HAVING count(*) > 1"),
        (1, 0, 0)
    );
    assert_eq!(
        level("SELECT a FROM t GROUP BY a HAVING count(*) > 1"),
        Hardness::Easy
    );
}

#[test]
fn several_select_items_count_as_other() {
    assert_eq!(parts("SELECT name, age FROM singer"), (0, 0, 1));
    assert_eq!(level("SELECT name, age FROM singer"), Hardness::Medium);
}

#[test]
fn where_counts_once_and_two_conditions_count_as_other() {
    assert_eq!(parts("SELECT name FROM singer WHERE age > 20"), (1, 0, 0));
    assert_eq!(
        level("SELECT name FROM singer WHERE age > 20"),
        Hardness::Easy
    );
    let two = "SELECT name FROM singer WHERE age > 20 AND country = 'France'";
    assert_eq!(parse(two).unwrap().where_.flat_len(), 3);
    assert_eq!(parts(two), (1, 0, 1));
    assert_eq!(level(two), Hardness::Medium);
}

#[test]
fn or_and_like_count_in_component1() {
    let or = "SELECT name FROM singer WHERE age > 20 OR country = 'France'";
    assert_eq!(parts(or), (2, 0, 1));
    let like = "SELECT name FROM singer WHERE name LIKE '%Smith%'";
    assert_eq!(parts(like), (2, 0, 0));
    assert_eq!(level(like), Hardness::Medium);
    // The same query with `=` is one component lighter, and easy.
    assert_eq!(
        level("SELECT name FROM singer WHERE name = 'Smith'"),
        Hardness::Easy
    );
    let not_like = "SELECT name FROM singer WHERE name NOT LIKE '%Smith%'";
    let c = parse(not_like).unwrap();
    assert!(c.where_.units()[0].not);
    assert_eq!(c.where_.units()[0].op, WhereOp::Like);
}

#[test]
fn every_extra_table_counts_as_a_join() {
    let one = "SELECT T1.name FROM a AS T1 JOIN b AS T2 ON T1.id = T2.id";
    assert_eq!(parts(one), (1, 0, 0));
    assert_eq!(level(one), Hardness::Easy);
    let two = "SELECT T1.name FROM a AS T1 JOIN b AS T2 ON T1.id = T2.id \
               JOIN c AS T3 ON T2.x = T3.x";
    assert_eq!(parts(two), (2, 0, 0));
    assert_eq!(level(two), Hardness::Medium);
    // All ON lists form one condition, joined with `and`.
    let from = parse(two).unwrap().from;
    assert_eq!(from.table_units.len(), 3);
    assert_eq!(from.conds.units().len(), 2);
    assert_eq!(from.conds.connectors(), &[Connector::And]);
}

#[test]
fn two_joins_group_order_limit_is_extra() {
    let sql = "SELECT T1.name FROM a AS T1 JOIN b AS T2 ON T1.id = T2.id \
               JOIN c AS T3 ON T2.x = T3.x GROUP BY T1.name ORDER BY count(*) DESC LIMIT 1";
    // group + order + limit + 2 joins; one aggregate (order by) is not "several".
    assert_eq!(parts(sql), (5, 0, 0));
    assert_eq!(level(sql), Hardness::Extra);
    let parsed = parse(sql).unwrap();
    assert_eq!(parsed.limit, Some(1));
    assert!(parsed.order_by.as_ref().is_some_and(|o| o.desc));
}

#[test]
fn three_components_without_others_is_hard() {
    let sql = "SELECT name FROM singer WHERE age > 20 GROUP BY country ORDER BY name";
    assert_eq!(parts(sql), (3, 0, 0));
    assert_eq!(level(sql), Hardness::Hard);
}

#[test]
fn many_others_with_few_components_is_hard() {
    let sql = "SELECT name, count(*), max(age) FROM singer WHERE age > 20 AND x = 1 \
               GROUP BY a, b";
    // aggregates (2), select items (3), where conditions (2), group columns (2): four others.
    assert_eq!(parts(sql), (2, 0, 4));
    assert_eq!(level(sql), Hardness::Hard);
}

#[test]
fn nested_queries_count_in_component2() {
    let sql = "SELECT name FROM singer WHERE age > (SELECT avg(age) FROM singer)";
    assert_eq!(parts(sql), (1, 1, 0));
    assert_eq!(level(sql), Hardness::Hard);
    let with_other = "SELECT name, age FROM singer WHERE age > (SELECT avg(age) FROM singer)";
    assert_eq!(level(with_other), Hardness::Extra);
    let two = "SELECT name FROM singer WHERE age > (SELECT avg(age) FROM singer) \
               AND id IN (SELECT singer_id FROM concert)";
    assert_eq!(parts(two), (1, 2, 1));
}

#[test]
fn between_keeps_its_second_value_in_val2() {
    let plain = parse("SELECT a FROM t WHERE b BETWEEN 1 AND 5").unwrap();
    let unit = &plain.where_.units()[0];
    assert_eq!(unit.op, WhereOp::Between);
    assert_eq!(unit.val1, Some(Val::Number(1.0)));
    assert_eq!(unit.val2, Some(Val::Number(5.0)));
    // BETWEEN's AND is not a connector.
    assert_eq!(plain.where_.flat_len(), 1);
    let nested = "SELECT a FROM t WHERE b BETWEEN 1 AND (SELECT max(b) FROM u)";
    assert!(matches!(
        parse(nested).unwrap().where_.units()[0].val2,
        Some(Val::Sql(_))
    ));
    assert_eq!(parts(nested), (1, 1, 0));
}

#[test]
fn set_operations_nest_to_the_right() {
    let sql = "SELECT a FROM t UNION SELECT a FROM u UNION SELECT a FROM v";
    let parsed = parse(sql).unwrap();
    let right = parsed.union.as_ref().expect("first union");
    assert!(
        right.union.is_some(),
        "B UNION C is the right side of A's union"
    );
    assert!(parsed.intersect.is_none() && parsed.except.is_none());
    assert_eq!(parts(sql), (0, 1, 0));
    assert_eq!(level(sql), Hardness::Hard);
    let except = "SELECT a FROM t WHERE b = 1 EXCEPT SELECT a FROM u WHERE b = 2";
    assert_eq!(parts(except), (1, 1, 0));
    assert!(parse(except).unwrap().except.is_some());
}

#[test]
fn a_subquery_in_from_is_a_table_unit_not_a_nested_query() {
    let sql = "SELECT count(*) FROM (SELECT * FROM endowment WHERE amount > 8.5 \
               GROUP BY school_id HAVING count(*) > 1)";
    let parsed = parse(sql).unwrap();
    assert!(matches!(parsed.from.table_units[..], [TableUnit::Sql(_)]));
    assert_eq!(parts(sql), (0, 0, 0));
    assert_eq!(level(sql), Hardness::Easy);
}

#[test]
fn negated_where_conditions_count_as_aggregates() {
    // Official quirk: `has_agg(cond)` reads not_op.
    let negated = "SELECT count(*) FROM t WHERE a NOT IN (SELECT a FROM u)";
    let plain = "SELECT count(*) FROM t WHERE a IN (SELECT a FROM u)";
    assert_eq!(parts(negated), (1, 1, 1));
    assert_eq!(parts(plain), (1, 1, 0));
    assert_eq!(level(negated), Hardness::Extra);
    assert_eq!(level(plain), Hardness::Hard);
}

#[test]
fn having_connectors_count_as_aggregates() {
    // Official quirk: `count_agg(having)` walks the connectors too, and each counts.
    let one = "SELECT a, count(*) FROM t GROUP BY a HAVING count(*) > 1";
    let two = "SELECT a, count(*) FROM t GROUP BY a HAVING count(*) > 1 AND sum(b) > 2";
    assert_eq!(parts(one), (1, 0, 1));
    assert_eq!(parts(two), (1, 0, 2));
    assert_eq!(level(two), Hardness::Medium);
}

#[test]
fn order_by_aggregates_count_on_both_sides_of_an_expression() {
    assert_eq!(parts("SELECT a FROM t ORDER BY max(b)"), (1, 0, 0));
    assert_eq!(parts("SELECT a FROM t ORDER BY max(b) - min(b)"), (1, 0, 1));
    assert_eq!(
        parts("SELECT a FROM t ORDER BY max(b) DESC, min(b)"),
        (1, 0, 1)
    );
}

#[test]
fn group_by_several_columns_counts_as_other() {
    assert_eq!(parts("SELECT a FROM t GROUP BY a"), (1, 0, 0));
    assert_eq!(parts("SELECT a FROM t GROUP BY a, b"), (1, 0, 1));
}

#[test]
fn a_column_value_swallows_the_rest_of_the_condition_like_get_sql() {
    // `get_sql` skips from a column value to the next `and`/`,`/`)`/clause keyword, so the
    // OR after `T2.b` and its condition are lost; written the other way round they count.
    let swallowed = "SELECT T1.a FROM x AS T1 JOIN y AS T2 ON T1.id = T2.id \
                     WHERE T1.a = T2.b OR T1.c = 1";
    let kept = "SELECT T1.a FROM x AS T1 JOIN y AS T2 ON T1.id = T2.id \
                WHERE T1.c = 1 OR T1.a = T2.b";
    assert_eq!(parse(swallowed).unwrap().where_.units().len(), 1);
    assert_eq!(parts(swallowed), (2, 0, 0));
    assert_eq!(parts(kept), (3, 0, 1));
}

#[test]
fn forms_beyond_get_sql_are_read_sensibly() {
    // Comma and LEFT joins are joins; aliases without AS are aliases.
    assert_eq!(
        parts("SELECT a FROM t1 x, t2 y WHERE x.id = y.id"),
        (2, 0, 0)
    );
    assert_eq!(
        parts("SELECT a FROM t1 LEFT OUTER JOIN t2 ON t1.id = t2.id"),
        (1, 0, 0)
    );
    assert_eq!(parts("SELECT count(*) AS n FROM t"), (0, 0, 0));
    let ne = parse("SELECT a FROM t WHERE b <> 1").unwrap();
    assert_eq!(ne.where_.units()[0].op, WhereOp::Ne);
    let is_not = parse("SELECT a FROM t WHERE b IS NOT NULL").unwrap();
    assert!(is_not.where_.units()[0].not);
    assert_eq!(is_not.where_.units()[0].op, WhereOp::Is);
    let list = parse("SELECT a FROM t WHERE b IN (1, -2, 'x')").unwrap();
    assert!(matches!(&list.where_.units()[0].val1, Some(Val::List(v)) if v.len() == 3));
    assert_eq!(
        parts("SELECT a FROM t WHERE NOT EXISTS (SELECT * FROM u)"),
        (1, 1, 0)
    );
    assert_eq!(
        parts("SELECT a FROM t UNION ALL SELECT a FROM u"),
        (0, 1, 0)
    );
    assert_eq!(
        parse("SELECT a FROM t LIMIT 3 OFFSET 6;").unwrap().limit,
        Some(3)
    );
}

#[test]
fn errors_say_where_and_what() {
    match parse("SELEC name FROM t") {
        Err(HardnessError::Unexpected { offset, found, .. }) => {
            assert_eq!((offset, found.as_str()), (0, "SELEC"));
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        parse("SELECT name FROM t WHERE"),
        Err(HardnessError::UnexpectedEnd { .. })
    ));
    let stray = parse("SELECT a FROM t WHERE b = 1 c").unwrap_err();
    assert!(matches!(
        stray,
        HardnessError::Unexpected { offset: 28, .. }
    ));
    assert!(stray.to_string().contains("byte 28"), "{stray}");
    assert!(stray.to_string().contains("AND, OR"), "{stray}");
    assert!(matches!(
        parse("SELECT a FROM t WHERE b LIKE"),
        Err(HardnessError::UnexpectedEnd { .. })
    ));
}

#[test]
fn what_follows_a_complete_query_is_ignored_like_get_sql() {
    // From Spider's train gold: `get_sql` ends ORDER BY after `count(*)`.
    let spider = "SELECT T2.name FROM Certificate AS T1 JOIN Aircraft AS T2 ON T2.aid = T1.aid \
                  WHERE T2.distance > 5000 GROUP BY T1.aid ORDER BY count(*) >= 5";
    let cut = "SELECT T2.name FROM Certificate AS T1 JOIN Aircraft AS T2 ON T2.aid = T1.aid \
               WHERE T2.distance > 5000 GROUP BY T1.aid ORDER BY count(*)";
    assert_eq!(parse(spider), parse(cut));
    assert_eq!(parts(spider), (4, 0, 0));
    assert_eq!(level(spider), Hardness::Extra);
}

#[test]
fn deep_nesting_is_refused_not_a_stack_overflow() {
    let depth = MAX_DEPTH + 5;
    let sql = format!(
        "{}SELECT a FROM t{}",
        "SELECT a FROM t WHERE a IN (".repeat(depth),
        ")".repeat(depth)
    );
    assert_eq!(
        parse(&sql),
        Err(HardnessError::TooDeep { limit: MAX_DEPTH })
    );
    let ok = format!(
        "{}SELECT a FROM t{}",
        "SELECT a FROM t WHERE a IN (".repeat(10),
        ")".repeat(10)
    );
    assert_eq!(parts(&ok), (1, 1, 0));
}

#[test]
fn parsed_form_uses_the_same_rules() {
    let easy = serde_json::json!({"from": {"table_units": [["table_unit", 1]], "conds": []},
        "select": [false, [[3, [0, [0, 0, false], null]]]], "where": [], "groupBy": [],
        "having": [], "orderBy": [], "limit": null, "intersect": null, "union": null,
        "except": null});
    assert_eq!(hardness_from_parsed(&easy), Ok(Hardness::Easy));
    assert_eq!(
        SpiderSql::from_parsed(&easy).map(|s| Components::of(&s)),
        parse("SELECT count(*) FROM singer").map(|s| Components::of(&s))
    );
    // A where with an OR, a LIKE and a nested query in val1.
    let mut nested = easy.clone();
    nested["where"] = serde_json::json!([
        [false, 9, [0, [0, 2, false], null], "\"%a%\"", null],
        "or",
        [true, 8, [0, [0, 3, false], null], easy.clone(), null]
    ]);
    let c = Components::of(&SpiderSql::from_parsed(&nested).unwrap());
    // where + or + like; one nested; aggregates 2 (count + NOT) and where length 3.
    assert_eq!((c.component1, c.component2, c.others), (3, 1, 2));
    assert_eq!(c.level(), Hardness::Extra);
}

#[test]
fn malformed_parsed_form_names_the_place() {
    let mut sql = serde_json::json!({"from": {"table_units": [], "conds": []},
        "select": [false, []], "where": [[false, 2, [0, [0, 1, false], null], 1, null], "and"],
        "groupBy": [], "having": [], "orderBy": [], "limit": null, "intersect": null,
        "union": null, "except": null});
    match hardness_from_parsed(&sql) {
        Err(HardnessError::BadParsed { path, .. }) => assert_eq!(path, "sql.where"),
        other => panic!("{other:?}"),
    }
    sql["where"] = serde_json::json!([]);
    sql["orderBy"] = serde_json::json!(["sideways", []]);
    match hardness_from_parsed(&sql) {
        Err(HardnessError::BadParsed { path, problem }) => {
            assert_eq!(path, "sql.orderBy");
            assert!(problem.contains("sideways"), "{problem}");
        }
        other => panic!("{other:?}"),
    }
    sql["orderBy"] = serde_json::json!([]);
    sql.as_object_mut().unwrap().remove("limit");
    assert!(
        hardness_from_parsed(&sql)
            .unwrap_err()
            .to_string()
            .contains("`limit`")
    );
}

#[test]
fn serde_names_are_spiders() {
    let names: Vec<String> = Hardness::ALL
        .iter()
        .map(|h| serde_json::to_string(h).unwrap())
        .collect();
    assert_eq!(names, ["\"easy\"", "\"medium\"", "\"hard\"", "\"extra\""]);
    assert_eq!(Hardness::Extra.to_string(), "extra");
}

const SOUP: &[&str] = &[
    "SELECT",
    "FROM",
    "WHERE",
    "GROUP",
    "BY",
    "ORDER",
    "HAVING",
    "LIMIT",
    "OFFSET",
    "INTERSECT",
    "UNION",
    "EXCEPT",
    "ALL",
    "JOIN",
    "LEFT",
    "ON",
    "AS",
    "AND",
    "OR",
    "NOT",
    "IN",
    "LIKE",
    "IS",
    "NULL",
    "BETWEEN",
    "EXISTS",
    "DISTINCT",
    "ASC",
    "DESC",
    "count",
    "max",
    "avg",
    "(",
    ")",
    ",",
    ".",
    "*",
    "-",
    "+",
    "/",
    "=",
    ">",
    "<",
    ">=",
    "!=",
    "<>",
    ";",
    "t",
    "T1",
    "a",
    "1",
    "2.5",
    "'x'",
    "\"y\"",
    "`z`",
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Any sequence of SQL tokens gives a level or an error, never a panic.
    #[test]
    fn token_soup_never_panics(idx in proptest::collection::vec(0..SOUP.len(), 0..40)) {
        let sql: Vec<&str> = idx.iter().map(|&i| SOUP[i]).collect();
        let _ = hardness(&sql.join(" "));
    }

    /// Soups after a valid start reach deeper into the parser.
    #[test]
    fn soup_after_a_valid_prefix_never_panics(
        idx in proptest::collection::vec(0..SOUP.len(), 0..30),
        prefix in 0usize..3,
    ) {
        let start = ["SELECT a FROM t WHERE", "SELECT count(*) FROM t AS T1 JOIN", "SELECT"];
        let sql: Vec<&str> = idx.iter().map(|&i| SOUP[i]).collect();
        let _ = hardness(&format!("{} {}", start[prefix], sql.join(" ")));
    }

    /// Arbitrary text (including non-ASCII) never panics either.
    #[test]
    fn arbitrary_text_never_panics(s in "\\PC{0,60}") {
        let _ = hardness(&s);
    }
}
