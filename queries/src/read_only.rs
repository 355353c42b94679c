//! Keeps the shared PostgreSQL endpoint read-only.
//!
//! All connections share one DataFusion context holding the live tables, so
//! a `DROP TABLE`, `CREATE TABLE`, `INSERT` or `COPY ... TO` from one analyst
//! would change (or write files for) everyone. Only statements that read are
//! let through to datafusion-postgres.

use async_trait::async_trait;
use datafusion::common::ParamValues;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::ast::{Query, SetExpr, Statement};
use datafusion_postgres::hooks::HookClient;
use datafusion_postgres::pgwire::api::results::Response;
use datafusion_postgres::pgwire::api::ClientInfo;
use datafusion_postgres::pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use datafusion_postgres::QueryHook;

/// Rejects every statement [`is_read_only`] refuses, with SQLSTATE 25006
/// (`read_only_sql_transaction`), before any other hook or DataFusion sees
/// it; lets everything else through untouched.
#[derive(Debug)]
pub(crate) struct ReadOnlyHook;

impl ReadOnlyHook {
    fn check(statement: &Statement) -> Option<PgWireError> {
        if is_read_only(statement) {
            return None;
        }
        let mut text = statement.to_string();
        if text.chars().count() > 60 {
            text = text.chars().take(57).collect::<String>() + "...";
        }
        Some(PgWireError::UserError(Box::new(ErrorInfo::new(
            "ERROR".to_owned(),
            "25006".to_owned(),
            format!("cannot execute `{text}`: the shardcast SQL endpoint is read-only"),
        ))))
    }
}

#[async_trait]
impl QueryHook for ReadOnlyHook {
    async fn handle_simple_query(
        &self,
        statement: &Statement,
        _session_context: &SessionContext,
        _client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        Self::check(statement).map(Err)
    }

    async fn handle_extended_parse_query(
        &self,
        statement: &Statement,
        _session_context: &SessionContext,
        _client: &(dyn ClientInfo + Send + Sync),
    ) -> Option<PgWireResult<LogicalPlan>> {
        // Refusing at Parse already; the execute check below is the backstop.
        Self::check(statement).map(Err)
    }

    async fn handle_extended_query(
        &self,
        statement: &Statement,
        _logical_plan: &LogicalPlan,
        _params: &ParamValues,
        _session_context: &SessionContext,
        _client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        Self::check(statement).map(Err)
    }
}

/// Whether `statement` only reads: queries (without `SELECT ... INTO` or
/// data-modifying parts), `EXPLAIN` of such, `SHOW`, cursors over such,
/// transaction control, and `SET` of client settings. `SET` of `datafusion.*`
/// engine options is refused because it would change the shared context.
/// Anything not listed is refused, so new statement kinds default to denied.
pub(crate) fn is_read_only(statement: &Statement) -> bool {
    match statement {
        Statement::Query(query) => query_is_read_only(query),
        Statement::Explain { statement, .. } | Statement::Prepare { statement, .. } => {
            is_read_only(statement)
        }
        Statement::Declare { stmts } => stmts
            .iter()
            .filter_map(|declare| declare.for_query.as_deref())
            .all(query_is_read_only),
        Statement::Set(set) => !set.to_string().to_lowercase().contains("datafusion."),
        Statement::ExplainTable { .. }
        | Statement::ShowFunctions { .. }
        | Statement::ShowVariable { .. }
        | Statement::ShowStatus { .. }
        | Statement::ShowVariables { .. }
        | Statement::ShowCreate { .. }
        | Statement::ShowColumns { .. }
        | Statement::ShowCatalogs { .. }
        | Statement::ShowDatabases { .. }
        | Statement::ShowSchemas { .. }
        | Statement::ShowTables { .. }
        | Statement::ShowViews { .. }
        | Statement::ShowCollation { .. }
        | Statement::StartTransaction { .. }
        | Statement::Commit { .. }
        | Statement::Rollback { .. }
        | Statement::Savepoint { .. }
        | Statement::ReleaseSavepoint { .. }
        | Statement::Fetch { .. }
        | Statement::Close { .. }
        | Statement::Discard { .. }
        | Statement::Deallocate { .. }
        // EXECUTE runs a statement that PREPARE already checked.
        | Statement::Execute { .. } => true,
        _ => false,
    }
}

fn query_is_read_only(query: &Query) -> bool {
    let ctes_read_only = query.with.as_ref().is_none_or(|with| {
        with.cte_tables
            .iter()
            .all(|cte| query_is_read_only(&cte.query))
    });
    ctes_read_only && set_expr_is_read_only(&query.body)
}

fn set_expr_is_read_only(body: &SetExpr) -> bool {
    match body {
        // `SELECT ... INTO t` creates a table.
        SetExpr::Select(select) => select.into.is_none(),
        SetExpr::Query(query) => query_is_read_only(query),
        SetExpr::SetOperation { left, right, .. } => {
            set_expr_is_read_only(left) && set_expr_is_read_only(right)
        }
        SetExpr::Values(_) | SetExpr::Table(_) => true,
        SetExpr::Insert(_) | SetExpr::Update(_) | SetExpr::Delete(_) | SetExpr::Merge(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
    use datafusion::sql::sqlparser::parser::Parser;

    use super::is_read_only;

    fn read_only(sql: &str) -> bool {
        let statements = Parser::parse_sql(&PostgreSqlDialect {}, sql).expect("test SQL parses");
        statements.iter().all(is_read_only)
    }

    #[test]
    fn reads_are_allowed() {
        for sql in [
            "SELECT 1",
            "WITH x AS (SELECT 1) SELECT * FROM x UNION ALL SELECT 2",
            "EXPLAIN SELECT * FROM t",
            "SHOW TIME ZONE",
            "SET application_name = 'psql'",
            "BEGIN",
            "COMMIT",
            "DECLARE c CURSOR FOR SELECT 1",
            "FETCH NEXT FROM c",
            "VALUES (1), (2)",
        ] {
            assert!(read_only(sql), "{sql} should be allowed");
        }
    }

    #[test]
    fn writes_are_refused() {
        for sql in [
            "CREATE TABLE t (a INT)",
            "CREATE TABLE t AS SELECT 1",
            "DROP TABLE assignments",
            "INSERT INTO t VALUES (1)",
            "DELETE FROM t",
            "UPDATE t SET a = 1",
            "TRUNCATE t",
            "COPY t TO '/tmp/x.csv'",
            "SELECT * INTO t2 FROM t",
            "EXPLAIN ANALYZE INSERT INTO t VALUES (1)",
            "CREATE VIEW v AS SELECT 1",
            "SET datafusion.execution.batch_size = 1",
            "PREPARE p AS INSERT INTO t VALUES (1)",
        ] {
            assert!(!read_only(sql), "{sql} should be refused");
        }
    }
}
