//! Question templates: for each of the six query types, several phrasings, each paired with the
//! gold SQL it means. A template picks its tables, columns and values at random from the
//! database; the caller executes the SQL and drops an instance that returns no row.

use rand::Rng;
use rand::seq::IndexedRandom;
use rand_chacha::ChaCha8Rng;

use super::database::{ForeignKey, SynthDb, Val};
use super::domains::{Kind, TableDef};
use crate::sql::classify::QueryType;

/// A question and its gold SQL.
#[derive(Debug, Clone, PartialEq)]
pub struct Instance {
    pub question: String,
    pub sql: String,
}

/// One random instance of `ty` on `db`, or `None` when the draw does not fit the database (the
/// caller draws again).
pub fn instantiate(ty: QueryType, db: &SynthDb, rng: &mut ChaCha8Rng) -> Option<Instance> {
    let (question, sql) = match ty {
        QueryType::EqualityByKey => equality_key(db, rng),
        QueryType::EqualityByNonKey => equality_non_key(db, rng),
        QueryType::JoinNoAggregate => join(db, rng),
        QueryType::AggregateGroupBy => aggregate_group_by(db, rng),
        QueryType::JoinAggregateGroupBy => join_aggregate_group_by(db, rng),
        QueryType::Nested => nested(db, rng),
        QueryType::Other => None,
    }?;
    Some(Instance { question, sql })
}

fn equality_key(db: &SynthDb, rng: &mut ChaCha8Rng) -> Option<(String, String)> {
    let t = rng.random_range(0..db.table_count());
    let table = db.table(t);
    let attrs = columns(table, |k| k.is_attribute());
    let &a = attrs.choose(rng)?;
    let id = random_row(db, t, rng)[0].spoken();
    let (name, pk, e, an) = (table.name, pk(table), table.singular(), table.natural(a));
    let col = table.columns[a].name;
    Some(match rng.random_range(0..5) {
        0 => (
            format!("What is the {an} of the {e} with id {id}?"),
            format!("SELECT {col} FROM {name} WHERE {pk} = {id}"),
        ),
        1 => (
            format!("Give the {an} of {e} number {id}."),
            format!("SELECT {col} FROM {name} WHERE {pk} = {id}"),
        ),
        2 => {
            let b = other_than(&attrs, a, rng)?;
            (
                format!(
                    "Show the {an} and the {} of the {e} whose id is {id}.",
                    table.natural(b)
                ),
                format!(
                    "SELECT {col}, {} FROM {name} WHERE {pk} = {id}",
                    table.columns[b].name
                ),
            )
        }
        3 => (
            format!("For the {e} with id {id}, what is the {an}?"),
            format!("SELECT T1.{col} FROM {name} AS T1 WHERE T1.{pk} = {id}"),
        ),
        _ => (
            format!("Find all the information about the {e} with id {id}."),
            format!("SELECT * FROM {name} WHERE {pk} = {id}"),
        ),
    })
}

fn equality_non_key(db: &SynthDb, rng: &mut ChaCha8Rng) -> Option<(String, String)> {
    let t = rng.random_range(0..db.table_count());
    let table = db.table(t);
    let &f = columns(table, filterable).choose(rng)?;
    let outputs: Vec<usize> = columns(table, |k| k.is_attribute())
        .into_iter()
        .filter(|&a| a != f)
        .collect();
    let &a = outputs.choose(rng)?;
    let value = &random_row(db, t, rng)[f];
    let (v, lit) = (value.spoken(), value.sql());
    let (name, e, es) = (table.name, table.singular(), table.plural);
    let (an, fname, fcol, col) = (
        table.natural(a),
        table.natural(f),
        table.columns[f].name,
        table.columns[a].name,
    );
    Some(match rng.random_range(0..5) {
        0 => (
            format!("What is the {an} of each {e} whose {fname} is {v}?"),
            format!("SELECT {col} FROM {name} WHERE {fcol} = {lit}"),
        ),
        1 => (
            format!("Show the {an} of every {e} with {fname} {v}."),
            format!("SELECT {col} FROM {name} WHERE {fcol} = {lit}"),
        ),
        2 => (
            format!("Which {es} have {v} as their {fname}? Give their {an}."),
            format!("SELECT T1.{col} FROM {name} AS T1 WHERE T1.{fcol} = {lit}"),
        ),
        3 => {
            let b = other_than(&outputs, a, rng)?;
            (
                format!(
                    "List the {an} and the {} of the {es} whose {fname} is {v}.",
                    table.natural(b)
                ),
                format!(
                    "SELECT {col}, {} FROM {name} WHERE {fcol} = {lit}",
                    table.columns[b].name
                ),
            )
        }
        _ => (
            format!("Find the distinct values of {an} among {es} whose {fname} equals {v}."),
            format!("SELECT DISTINCT {col} FROM {name} WHERE {fcol} = {lit}"),
        ),
    })
}

fn join(db: &SynthDb, rng: &mut ChaCha8Rng) -> Option<(String, String)> {
    let fks = db.foreign_keys();
    let &fk = fks.choose(rng)?;
    let J {
        child,
        parent,
        ce,
        ces,
        role,
        from,
    } = J::new(db, fk);
    let &a = columns(child, |k| k.is_attribute()).choose(rng)?;
    let b = describing(parent)?;
    let (an, bn) = (child.natural(a), parent.natural(b));
    let (acol, bcol) = (child.columns[a].name, parent.columns[b].name);
    Some(match rng.random_range(0..6) {
        0 => (
            format!("Show the {an} of each {ce} together with the {bn} of its {role}."),
            format!("SELECT T1.{acol}, T2.{bcol} {from}"),
        ),
        1 => (
            format!("For each {ce}, give its {an} and its {role}'s {bn}."),
            format!("SELECT T1.{acol}, T2.{bcol} {from}"),
        ),
        2 => {
            let &f = columns(parent, filterable).choose(rng)?;
            // A parent row that has at least one child, so the answer is not empty.
            let row = random_row(db, fk.child, rng);
            let Val::Int(pid) = row[fk.column] else {
                return None;
            };
            let value = &db.rows[fk.parent][pid as usize - 1][f];
            (
                format!(
                    "What is the {an} of the {ces} whose {role} has {} {}?",
                    parent.natural(f),
                    value.spoken()
                ),
                format!(
                    "SELECT T1.{acol} {from} WHERE T2.{} = {}",
                    parent.columns[f].name,
                    value.sql()
                ),
            )
        }
        3 => {
            let &f = columns(child, filterable).choose(rng)?;
            let value = &random_row(db, fk.child, rng)[f];
            (
                format!(
                    "List the {bn} of the {role} of every {ce} whose {} is {}.",
                    child.natural(f),
                    value.spoken()
                ),
                format!(
                    "SELECT T2.{bcol} {from} WHERE T1.{} = {}",
                    child.columns[f].name,
                    value.sql()
                ),
            )
        }
        4 => (
            format!("Show the {bn} of the {role} and the {an} for all {ces}."),
            format!(
                "SELECT T2.{bcol}, T1.{acol} FROM {} AS T1, {} AS T2 WHERE T1.{} = T2.{}",
                child.name,
                parent.name,
                child.columns[fk.column].name,
                pk(parent)
            ),
        ),
        _ => {
            // A second foreign key of the same child: a three-table join.
            let other: Vec<ForeignKey> = fks
                .iter()
                .copied()
                .filter(|o| o.child == fk.child && o.column != fk.column)
                .collect();
            let &o = other.choose(rng)?;
            let third = db.table(o.parent);
            let c = describing(third)?;
            (
                format!(
                    "For every {ce}, show the {bn} of its {role} and the {} of its {}.",
                    third.natural(c),
                    role_noun(db, o)
                ),
                format!(
                    "SELECT T2.{bcol}, T3.{} {from} JOIN {} AS T3 ON T1.{} = T3.{}",
                    third.columns[c].name,
                    third.name,
                    child.columns[o.column].name,
                    pk(third)
                ),
            )
        }
    })
}

fn aggregate_group_by(db: &SynthDb, rng: &mut ChaCha8Rng) -> Option<(String, String)> {
    let t = rng.random_range(0..db.table_count());
    let table = db.table(t);
    let (name, es) = (table.name, table.plural);
    // Group by a categorical column, or by a foreign key ("each department id").
    let mut groups: Vec<(String, &'static str)> = columns(table, Kind::is_categorical)
        .into_iter()
        .map(|g| (table.natural(g), table.columns[g].name))
        .collect();
    for fk in db.foreign_keys().into_iter().filter(|f| f.child == t) {
        groups.push((
            format!("{} id", role_noun(db, fk)),
            table.columns[fk.column].name,
        ));
    }
    let (gn, gcol) = groups.choose(rng)?.clone();
    let numeric = columns(table, Kind::is_numeric);
    let n = numeric
        .choose(rng)
        .map(|&n| (n, table.natural(n), table.columns[n].name));
    Some(match (rng.random_range(0..10), n) {
        (1, Some((_, nn, ncol))) => (
            format!("What is the average {nn} of {es} for each {gn}?"),
            format!("SELECT {gcol}, AVG({ncol}) FROM {name} GROUP BY {gcol}"),
        ),
        (2, Some((_, nn, ncol))) => (
            format!("For each {gn}, show the highest and the lowest {nn} among {es}."),
            format!("SELECT {gcol}, MAX({ncol}), MIN({ncol}) FROM {name} GROUP BY {gcol}"),
        ),
        (3, _) => (
            format!("Which {gn} has the most {es}?"),
            format!("SELECT {gcol} FROM {name} GROUP BY {gcol} ORDER BY COUNT(*) DESC LIMIT 1"),
        ),
        (4, _) => {
            let k = rng.random_range(2..=12);
            (
                format!("Which values of {gn} are shared by at least {k} {es}?"),
                format!("SELECT {gcol} FROM {name} GROUP BY {gcol} HAVING COUNT(*) >= {k}"),
            )
        }
        (5, Some((c, nn, ncol))) if table.columns[c].kind.is_summable() => (
            format!("What is the total {nn} of the {es} in each {gn}?"),
            format!("SELECT {gcol}, SUM({ncol}) FROM {name} GROUP BY {gcol}"),
        ),
        (6, Some((c, nn, ncol))) => {
            // A threshold taken from the data, so some group is above it.
            let x = random_row(db, t, rng)[c].sql();
            (
                format!("Which {gn} values have an average {nn} of their {es} above {x}?"),
                format!("SELECT {gcol} FROM {name} GROUP BY {gcol} HAVING AVG({ncol}) > {x}"),
            )
        }
        (7, _) => (
            format!("List each {gn} with its number of {es}, from the most to the fewest."),
            format!("SELECT {gcol}, COUNT(*) FROM {name} GROUP BY {gcol} ORDER BY COUNT(*) DESC"),
        ),
        (8, Some((_, nn, ncol))) => (
            format!("Which {gn} has the highest average {nn} of {es}?"),
            format!("SELECT {gcol} FROM {name} GROUP BY {gcol} ORDER BY AVG({ncol}) DESC LIMIT 1"),
        ),
        (9, _) => (
            format!("Which {gn} has the fewest {es}?"),
            format!("SELECT {gcol} FROM {name} GROUP BY {gcol} ORDER BY COUNT(*) ASC LIMIT 1"),
        ),
        _ => (
            format!("How many {es} are there for each {gn}?"),
            format!("SELECT {gcol}, COUNT(*) FROM {name} GROUP BY {gcol}"),
        ),
    })
}

fn join_aggregate_group_by(db: &SynthDb, rng: &mut ChaCha8Rng) -> Option<(String, String)> {
    let &fk = db.foreign_keys().choose(rng)?;
    let J {
        child,
        parent,
        ces,
        role,
        from,
        ..
    } = J::new(db, fk);
    // Name the parent by its label mostly, sometimes by another of its attributes.
    let b = if rng.random_bool(0.6) {
        describing(parent)?
    } else {
        *columns(parent, |k| k.is_attribute()).choose(rng)?
    };
    let (bn, bcol, ppk) = (parent.natural(b), parent.columns[b].name, pk(parent));
    let n = columns(child, Kind::is_numeric)
        .choose(rng)
        .map(|&n| (child.natural(n), child.columns[n].name));
    Some(match (rng.random_range(0..9), n) {
        (8, Some((nn, ncol))) => {
            let c = child.columns.iter().position(|col| col.name == ncol)?;
            let x = random_row(db, fk.child, rng)[c].sql();
            (
                format!("Show the {bn} of the {role}s whose {ces} have an average {nn} above {x}."),
                format!("SELECT T2.{bcol} {from} GROUP BY T2.{ppk} HAVING AVG(T1.{ncol}) > {x}"),
            )
        }
        (6, Some((nn, ncol))) => (
            format!("Show the {bn} of each {role} and the highest {nn} among its {ces}."),
            format!("SELECT T2.{bcol}, MAX(T1.{ncol}) {from} GROUP BY T2.{ppk}"),
        ),
        (7, Some((nn, ncol))) => (
            format!("For every {role}, give its {bn} and the smallest {nn} of its {ces}."),
            format!("SELECT T2.{bcol}, MIN(T1.{ncol}) {from} GROUP BY T2.{ppk}"),
        ),
        (1, Some((nn, ncol))) => (
            format!(
                "What is the average {nn} of the {ces} of each {role}? Show the {role}'s {bn}."
            ),
            format!("SELECT T2.{bcol}, AVG(T1.{ncol}) {from} GROUP BY T2.{ppk}"),
        ),
        (2, _) => (
            format!("Which {role} has the most {ces}? Give its {bn}."),
            format!("SELECT T2.{bcol} {from} GROUP BY T2.{ppk} ORDER BY COUNT(*) DESC LIMIT 1"),
        ),
        (3, _) => {
            let k = rng.random_range(2..=10);
            (
                format!("Show the {bn} of every {role} with at least {k} {ces}."),
                format!("SELECT T2.{bcol} {from} GROUP BY T2.{ppk} HAVING COUNT(*) >= {k}"),
            )
        }
        (4, _) => {
            let &g = columns(parent, Kind::is_categorical).choose(rng)?;
            let (gn, gcol) = (parent.natural(g), parent.columns[g].name);
            (
                format!("How many {ces} are there for each {gn} of their {role}?"),
                format!("SELECT T2.{gcol}, COUNT(*) {from} GROUP BY T2.{gcol}"),
            )
        }
        (5, Some((nn, ncol)))
            if child
                .columns
                .iter()
                .any(|c| c.name == ncol && c.kind.is_summable()) =>
        {
            (
                format!("For each {role}, what is the total {nn} of its {ces}? Show its {bn} too."),
                format!("SELECT T2.{bcol}, SUM(T1.{ncol}) {from} GROUP BY T2.{ppk}"),
            )
        }
        _ => (
            format!("List each {role}'s {bn} and its number of {ces}."),
            format!("SELECT T2.{bcol}, COUNT(*) {from} GROUP BY T2.{ppk}"),
        ),
    })
}

fn nested(db: &SynthDb, rng: &mut ChaCha8Rng) -> Option<(String, String)> {
    if rng.random_bool(0.6) {
        // Compare with an aggregate of the same table.
        let t = rng.random_range(0..db.table_count());
        let table = db.table(t);
        let &l = columns(table, Kind::is_label).choose(rng)?;
        let &n = columns(table, Kind::is_numeric).choose(rng)?;
        let (name, e, es) = (table.name, table.singular(), table.plural);
        let (ln, lcol, nn, ncol) = (
            table.natural(l),
            table.columns[l].name,
            table.natural(n),
            table.columns[n].name,
        );
        return Some(match rng.random_range(0..4) {
            0 => (
                format!("Which {es} have a {nn} value above the average? Give their {ln}."),
                format!(
                    "SELECT {lcol} FROM {name} WHERE {ncol} > (SELECT AVG({ncol}) FROM {name})"
                ),
            ),
            1 => (
                format!("List the {ln} of the {es} whose {nn} is below the average {nn}."),
                format!(
                    "SELECT {lcol} FROM {name} WHERE {ncol} < (SELECT AVG({ncol}) FROM {name})"
                ),
            ),
            2 => (
                format!("What is the {ln} of the {e} with the highest {nn}?"),
                format!(
                    "SELECT {lcol} FROM {name} WHERE {ncol} = (SELECT MAX({ncol}) FROM {name})"
                ),
            ),
            _ => (
                format!("Which {e} has the lowest {nn}? Show its {ln}."),
                format!(
                    "SELECT {lcol} FROM {name} WHERE {ncol} = (SELECT MIN({ncol}) FROM {name})"
                ),
            ),
        });
    }
    // Membership in the rows of a referencing table.
    let &fk = db.foreign_keys().choose(rng)?;
    let J {
        child,
        parent,
        ce,
        ces,
        role,
        ..
    } = J::new(db, fk);
    let b = describing(parent)?;
    let (bn, bcol, ppk, pes) = (
        parent.natural(b),
        parent.columns[b].name,
        pk(parent),
        parent.plural,
    );
    let k = child.columns[fk.column].name;
    let (cname, pname) = (child.name, parent.name);
    // "airports that are the origin airport of no flight" when the role is not the table's name.
    let plain = role == parent.singular();
    if rng.random_bool(0.4) {
        let question = if plain {
            format!("Show the {bn} of the {pes} that have no {ces}.")
        } else {
            format!("Show the {bn} of the {pes} that are not the {role} of any {ce}.")
        };
        return Some((
            question,
            format!("SELECT {bcol} FROM {pname} WHERE {ppk} NOT IN (SELECT {k} FROM {cname})"),
        ));
    }
    let &f = columns(child, filterable).choose(rng)?;
    let value = &random_row(db, fk.child, rng)[f];
    let (fname, fcol, v, lit) = (
        child.natural(f),
        child.columns[f].name,
        value.spoken(),
        value.sql(),
    );
    let question = if plain {
        format!("Show the {bn} of the {pes} that have a {ce} whose {fname} is {v}.")
    } else {
        format!("Show the {bn} of the {pes} that are the {role} of a {ce} whose {fname} is {v}.")
    };
    Some((
        question,
        format!(
            "SELECT {bcol} FROM {pname} WHERE {ppk} IN (SELECT {k} FROM {cname} WHERE {fcol} = {lit})"
        ),
    ))
}

/// The pieces of a child-to-parent join along one foreign key.
struct J {
    child: &'static TableDef,
    parent: &'static TableDef,
    ce: String,
    ces: &'static str,
    role: String,
    /// `FROM child AS T1 JOIN parent AS T2 ON T1.fk = T2.pk`.
    from: String,
}

impl J {
    fn new(db: &SynthDb, fk: ForeignKey) -> J {
        let (child, parent) = (db.table(fk.child), db.table(fk.parent));
        J {
            child,
            parent,
            ce: child.singular(),
            ces: child.plural,
            role: role_noun(db, fk),
            from: format!(
                "FROM {} AS T1 JOIN {} AS T2 ON T1.{} = T2.{}",
                child.name,
                parent.name,
                child.columns[fk.column].name,
                pk(parent)
            ),
        }
    }
}

/// What the parent is to the child: `origin_airport_id` → "origin airport", `team_id` → "team".
fn role_noun(db: &SynthDb, fk: ForeignKey) -> String {
    let name = db.table(fk.child).columns[fk.column].name;
    name.strip_suffix("_id").unwrap_or(name).replace('_', " ")
}

fn pk(table: &TableDef) -> &'static str {
    table.columns[0].name
}

/// Indices of the columns whose kind satisfies `keep`.
fn columns(table: &TableDef, keep: impl Fn(Kind) -> bool) -> Vec<usize> {
    (0..table.columns.len())
        .filter(|&c| keep(table.columns[c].kind))
        .collect()
}

/// Columns an equality filter reads well on (not amounts with decimals).
fn filterable(kind: Kind) -> bool {
    kind.is_attribute() && !matches!(kind, Kind::Real(..))
}

/// The column that names a row of `table`: its label, else its first attribute.
fn describing(table: &TableDef) -> Option<usize> {
    let labels = columns(table, Kind::is_label);
    labels
        .first()
        .copied()
        .or_else(|| columns(table, Kind::is_attribute).first().copied())
}

fn random_row<'a>(db: &'a SynthDb, t: usize, rng: &mut ChaCha8Rng) -> &'a [Val] {
    let rows = &db.rows[t];
    &rows[rng.random_range(0..rows.len())]
}

/// A random column index from `columns` other than `a` (a second output column).
fn other_than(columns: &[usize], a: usize, rng: &mut impl Rng) -> Option<usize> {
    let others: Vec<usize> = columns.iter().copied().filter(|&b| b != a).collect();
    others.choose(rng).copied()
}
