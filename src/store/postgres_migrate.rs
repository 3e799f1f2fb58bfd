//! The PostgreSQL schema's migrations: the embedded scripts of `migrations/postgres/`, and the one
//! `DO` block that applies those a store lacks, under an advisory lock, so instances starting
//! together never race (see `PostgresStore::migrate`).

/// Embedded migrations, applied in order; the version is the file's number.
pub(super) const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../../migrations/postgres/0001_init.sql")),
    (
        2,
        include_str!("../../migrations/postgres/0002_counters_dead_letters.sql"),
    ),
    (3, include_str!("../../migrations/postgres/0003_search.sql")),
    (
        4,
        include_str!("../../migrations/postgres/0004_volume_totals.sql"),
    ),
    (
        5,
        include_str!("../../migrations/postgres/0005_apply_function.sql"),
    ),
    (
        6,
        include_str!("../../migrations/postgres/0006_unfolded_indexes.sql"),
    ),
    (
        7,
        include_str!("../../migrations/postgres/0007_packed_apply.sql"),
    ),
];

/// Advisory lock key that serialises migrations across all instances ("edgelog" in ASCII).
const MIGRATION_LOCK: i64 = 0x0065_6467_656c_6f67;

/// Dollar-quote tag of the migration `DO` block; no migration may contain it.
const DO_TAG: &str = "$edgelog_migrate$";

/// One `DO` block that takes the migration lock, then applies every migration not yet recorded.
pub(super) fn migration_block() -> String {
    let mut block = format!(
        "DO {DO_TAG}\nBEGIN\n\
         PERFORM pg_advisory_xact_lock({MIGRATION_LOCK});\n\
         CREATE TABLE IF NOT EXISTS schema_migrations (\
         version INTEGER PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now());\n"
    );
    for (version, script) in MIGRATIONS {
        block.push_str(&format!(
            "IF NOT EXISTS (SELECT 1 FROM schema_migrations WHERE version = {version}) THEN\n\
             {script}\n\
             INSERT INTO schema_migrations (version) VALUES ({version});\n\
             END IF;\n"
        ));
    }
    block.push_str(&format!("END\n{DO_TAG}"));
    block
}

#[cfg(test)]
mod tests {
    use super::super::statements::{APPLY, APPLY_ARRAYS};
    use super::*;

    #[test]
    fn migration_block_guards_every_version_under_the_lock() {
        let block = migration_block();
        assert!(block.starts_with("DO $edgelog_migrate$\nBEGIN\nPERFORM pg_advisory_xact_lock("));
        assert!(block.ends_with("END\n$edgelog_migrate$"));
        assert!(block.contains("WHERE version = 1) THEN"));
        assert!(block.contains("INSERT INTO schema_migrations (version) VALUES (2);"));
        for (_, script) in MIGRATIONS {
            assert!(
                !script.contains(DO_TAG),
                "a migration must not close the DO block"
            );
        }
        assert_eq!(block.matches(DO_TAG).count(), 2);
    }

    #[test]
    fn apply_calls_the_functions_the_migrations_create() {
        for statement in [APPLY, APPLY_ARRAYS] {
            let name = statement
                .strip_prefix("SELECT * FROM ")
                .and_then(|rest| rest.split('(').next())
                .unwrap();
            let create = format!("CREATE OR REPLACE FUNCTION {name}(");
            let (version, body) = MIGRATIONS
                .iter()
                .find(|(_, script)| script.contains(&create))
                .unwrap_or_else(|| panic!("no migration creates {name}"));
            assert!(name.ends_with(&format!("_v{version}")), "{name}");
            for n in 1..=12 {
                assert!(statement.contains(&format!("${n}")), "${n}");
                assert!(body.contains(&format!("${n}")), "${n} in the body");
            }
            assert!(!statement.contains("$13") && !body.contains("$13"));
            // The body's dollar tag is not the DO block's, so the function ends inside it.
            let tag = body.split("LANGUAGE plpgsql VOLATILE AS ").nth(1).unwrap();
            let tag = &tag[..=tag[1..].find('$').unwrap() + 1];
            assert!(tag.starts_with("$edgelog_apply") && tag != DO_TAG, "{tag}");
            assert_eq!(body.matches(tag).count(), 2, "{tag}");
        }
    }
}
