//! The ddl schema prompt: bare `CREATE TABLE` statements from a tables.json entry, then the
//! question and the evidence. The first stopgap prompt of `exspin generate`, kept as a mode
//! because its figures were measured with it.

use crate::data::DatabaseSchema;

/// `CREATE TABLE` statements of the declared schema (original names, upper-cased types).
pub fn schema_ddl(s: &DatabaseSchema) -> String {
    let mut out = String::new();
    for (ti, table) in s.table_names_original.iter().enumerate() {
        let cols: Vec<String> = s
            .column_names_original
            .iter()
            .zip(&s.column_types)
            .filter(|((t, _), _)| *t == ti as i64)
            .map(|((_, c), ty)| format!("  {c} {}", ty.to_uppercase()))
            .collect();
        out.push_str(&format!(
            "CREATE TABLE {table} (\n{}\n);\n",
            cols.join(",\n")
        ));
    }
    out
}

/// The whole ddl schema prompt of a question: schema, a blank line, the question, the evidence.
pub fn ddl_prompt(schema: &DatabaseSchema, question: &str, evidence: &str) -> String {
    let evidence = if evidence.is_empty() {
        String::new()
    } else {
        format!("Evidence: {evidence}\n")
    };
    format!("{}\nQuestion: {question}\n{evidence}", schema_ddl(schema))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zoo() -> DatabaseSchema {
        DatabaseSchema {
            db_id: "zoo".into(),
            table_names: vec!["animal".into(), "keeper".into()],
            table_names_original: vec!["animal".into(), "keeper".into()],
            column_names: vec![],
            column_names_original: vec![
                (-1, "*".into()),
                (0, "id".into()),
                (0, "name".into()),
                (1, "keeper_id".into()),
            ],
            column_types: vec![
                "text".into(),
                "number".into(),
                "text".into(),
                "number".into(),
            ],
            primary_keys: vec![],
            foreign_keys: vec![],
        }
    }

    #[test]
    fn ddl_prompt_lists_each_table_then_the_question_and_evidence() {
        assert_eq!(
            ddl_prompt(&zoo(), "How many animals?", "cats are animals"),
            "CREATE TABLE animal (\n  id NUMBER,\n  name TEXT\n);\nCREATE TABLE keeper (\n  \
             keeper_id NUMBER\n);\n\nQuestion: How many animals?\nEvidence: cats are animals\n"
        );
        assert!(ddl_prompt(&zoo(), "q", "").ends_with("\nQuestion: q\n"));
    }
}
