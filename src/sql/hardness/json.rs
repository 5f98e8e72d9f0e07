//! Spider's parsed JSON (the `sql` field of `dev.json`, as `process_sql.py` wrote it) → the
//! structure `get_sql` builds. Every error names the place in the JSON that is malformed.

use serde_json::Value as Json;

use super::ast::*;
use super::{HardnessError, MAX_DEPTH, Result};

impl SpiderSql {
    /// Reads Spider's parsed form (`dev.json`'s `sql` field) into the same structure the text
    /// parser builds, so both paths share the rules.
    pub fn from_parsed(sql: &Json) -> Result<SpiderSql> {
        read_sql(sql, "sql", 0)
    }
}

fn bad(path: &str, problem: impl Into<String>) -> HardnessError {
    HardnessError::BadParsed {
        path: path.to_string(),
        problem: problem.into(),
    }
}

fn field<'j>(obj: &'j Json, key: &str, path: &str) -> Result<&'j Json> {
    obj.get(key)
        .ok_or_else(|| bad(path, format!("missing field `{key}`")))
}

fn array<'j>(v: &'j Json, path: &str) -> Result<&'j [Json]> {
    v.as_array()
        .map(Vec::as_slice)
        .ok_or_else(|| bad(path, format!("expected a list, found {v}")))
}

/// A fixed-length list (a Python tuple).
fn tuple<'j, const N: usize>(v: &'j Json, path: &str) -> Result<&'j [Json; N]> {
    array(v, path)?
        .try_into()
        .map_err(|_| bad(path, format!("expected a list of {N} items, found {v}")))
}

fn id(v: &Json, path: &str) -> Result<u64> {
    v.as_u64().ok_or_else(|| {
        bad(
            path,
            format!("expected a non-negative integer id, found {v}"),
        )
    })
}

fn flag(v: &Json, path: &str) -> Result<bool> {
    // Python's truthiness of what Spider stores there: a bool (or 0/1 in hand-made files).
    match v {
        Json::Bool(b) => Ok(*b),
        Json::Number(n) if n.as_u64().is_some() => Ok(n.as_u64() != Some(0)),
        _ => Err(bad(path, format!("expected true or false, found {v}"))),
    }
}

fn optional_sql(v: &Json, path: &str, depth: usize) -> Result<Option<Box<SpiderSql>>> {
    match v {
        Json::Null => Ok(None),
        _ => Ok(Some(Box::new(read_sql(v, path, depth + 1)?))),
    }
}

fn read_sql(v: &Json, path: &str, depth: usize) -> Result<SpiderSql> {
    if depth >= MAX_DEPTH {
        return Err(HardnessError::TooDeep { limit: MAX_DEPTH });
    }
    if !v.is_object() {
        return Err(bad(path, format!("expected a query object, found {v}")));
    }
    let from_path = format!("{path}.from");
    let from = field(v, "from", path)?;
    let units_path = format!("{from_path}.table_units");
    let table_units = array(field(from, "table_units", &from_path)?, &units_path)?
        .iter()
        .enumerate()
        .map(|(i, u)| {
            let p = format!("{units_path}[{i}]");
            let [kind, what] = tuple::<2>(u, &p)?;
            match kind.as_str() {
                Some("table_unit") => Ok(TableUnit::Table(Column::Id(id(what, &p)?))),
                Some("sql") => Ok(TableUnit::Sql(Box::new(read_sql(what, &p, depth + 1)?))),
                _ => Err(bad(&p, format!("unknown table unit type {kind}"))),
            }
        })
        .collect::<Result<Vec<_>>>()?;
    let conds_path = format!("{from_path}.conds");
    let conds = read_condition(field(from, "conds", &from_path)?, &conds_path, depth)?;

    let select_path = format!("{path}.select");
    let [distinct, items] = tuple::<2>(field(v, "select", path)?, &select_path)?;
    let select = array(items, &select_path)?
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let p = format!("{select_path}[1][{i}]");
            let [agg, unit] = tuple::<2>(item, &p)?;
            Ok((read_agg(agg, &p)?, read_val_unit(unit, &p)?))
        })
        .collect::<Result<Vec<_>>>()?;

    let group_path = format!("{path}.groupBy");
    let group_by = array(field(v, "groupBy", path)?, &group_path)?
        .iter()
        .enumerate()
        .map(|(i, c)| read_col_unit(c, &format!("{group_path}[{i}]")))
        .collect::<Result<Vec<_>>>()?;

    let order_path = format!("{path}.orderBy");
    let order = array(field(v, "orderBy", path)?, &order_path)?;
    let order_by = if order.is_empty() {
        None
    } else {
        let [dir, items] = tuple::<2>(field(v, "orderBy", path)?, &order_path)?;
        let desc = match dir.as_str() {
            Some("desc") => true,
            Some("asc") => false,
            _ => {
                return Err(bad(
                    &order_path,
                    format!("expected \"asc\" or \"desc\", found {dir}"),
                ));
            }
        };
        let items = array(items, &order_path)?
            .iter()
            .enumerate()
            .map(|(i, u)| read_val_unit(u, &format!("{order_path}[1][{i}]")))
            .collect::<Result<Vec<_>>>()?;
        Some(OrderBy { desc, items })
    };

    let limit = match field(v, "limit", path)? {
        Json::Null => None,
        l => Some(l.as_i64().ok_or_else(|| {
            bad(
                &format!("{path}.limit"),
                format!("expected an integer, found {l}"),
            )
        })?),
    };

    Ok(SpiderSql {
        distinct: flag(distinct, &select_path)?,
        select,
        from: FromClause { table_units, conds },
        where_: read_condition(field(v, "where", path)?, &format!("{path}.where"), depth)?,
        group_by,
        having: read_condition(field(v, "having", path)?, &format!("{path}.having"), depth)?,
        order_by,
        limit,
        intersect: optional_sql(
            field(v, "intersect", path)?,
            &format!("{path}.intersect"),
            depth,
        )?,
        union: optional_sql(field(v, "union", path)?, &format!("{path}.union"), depth)?,
        except: optional_sql(field(v, "except", path)?, &format!("{path}.except"), depth)?,
    })
}

fn read_agg(v: &Json, path: &str) -> Result<Agg> {
    let n = id(v, path)?;
    Agg::from_id(n).ok_or_else(|| bad(path, format!("unknown aggregate id {n} (0 to 5)")))
}

fn read_col_unit(v: &Json, path: &str) -> Result<ColUnit> {
    let [agg, col, distinct] = tuple::<3>(v, path)?;
    let col = match col {
        // Spider's schemas number `*` as column 0.
        c if c.as_u64() == Some(0) => Column::Star,
        c if c.is_u64() => Column::Id(id(c, path)?),
        // Older Spider files name columns (`"__singer.name__"`) instead of numbering them.
        Json::String(s) if s == "__all__" => Column::Star,
        Json::String(s) => Column::Name(s.clone()),
        c => return Err(bad(path, format!("expected a column id, found {c}"))),
    };
    Ok(ColUnit {
        agg: read_agg(agg, path)?,
        col,
        distinct: flag(distinct, path)?,
    })
}

fn read_val_unit(v: &Json, path: &str) -> Result<ValUnit> {
    let [op, left, right] = tuple::<3>(v, path)?;
    let n = id(op, path)?;
    Ok(ValUnit {
        op: UnitOp::from_id(n)
            .ok_or_else(|| bad(path, format!("unknown unit op id {n} (0 to 4)")))?,
        left: read_col_unit(left, path)?,
        right: match right {
            Json::Null => None,
            r => Some(read_col_unit(r, path)?),
        },
    })
}

fn read_val(v: &Json, path: &str, depth: usize) -> Result<Option<Val>> {
    Ok(Some(match v {
        Json::Null => return Ok(None),
        Json::Number(n) => Val::Number(n.as_f64().unwrap_or(f64::NAN)),
        Json::String(s) => Val::Text(s.clone()),
        Json::Object(_) => Val::Sql(Box::new(read_sql(v, path, depth + 1)?)),
        Json::Array(_) => Val::Col(read_col_unit(v, path)?),
        Json::Bool(_) => return Err(bad(path, format!("expected a value, found {v}"))),
    }))
}

fn read_condition(v: &Json, path: &str, depth: usize) -> Result<Condition> {
    let items = array(v, path)?;
    let mut cond = Condition::default();
    let mut connector = None;
    for (i, item) in items.iter().enumerate() {
        let p = format!("{path}[{i}]");
        if i % 2 == 1 {
            connector = Some(match item.as_str() {
                Some("and") => Connector::And,
                Some("or") => Connector::Or,
                _ => return Err(bad(&p, format!("expected \"and\" or \"or\", found {item}"))),
            });
            continue;
        }
        let [not, op, val_unit, val1, val2] = tuple::<5>(item, &p)?;
        let n = id(op, &p)?;
        cond.push(
            connector.take(),
            CondUnit {
                not: flag(not, &p)?,
                op: WhereOp::from_id(n)
                    .ok_or_else(|| bad(&p, format!("unknown condition op id {n} (0 to 11)")))?,
                val_unit: read_val_unit(val_unit, &p)?,
                val1: read_val(val1, &p, depth)?,
                val2: read_val(val2, &p, depth)?,
            },
        );
    }
    if items.len() % 2 == 0 && !items.is_empty() {
        return Err(bad(path, "the condition list ends with a connector"));
    }
    Ok(cond)
}
