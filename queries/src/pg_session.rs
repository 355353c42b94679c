//! datafusion-postgres' query handler, wrapped so that each statement reads
//! one pinned snapshot.

use std::fmt::Debug;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use datafusion_postgres::pgwire::api::portal::Portal;
use datafusion_postgres::pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use datafusion_postgres::pgwire::api::results::Response;
use datafusion_postgres::pgwire::api::store::PortalStore;
use datafusion_postgres::pgwire::api::{ClientInfo, ClientPortalStore};
use datafusion_postgres::pgwire::error::{PgWireError, PgWireResult};
use datafusion_postgres::pgwire::messages::response::TransactionStatus;
use datafusion_postgres::pgwire::messages::PgWireBackendMessage;
use datafusion_postgres::{DfSessionService, Parser};
use futures::Sink;

use crate::{with_snapshot, Snapshot, SnapshotStore};

/// Runs datafusion-postgres' [`DfSessionService`] with a snapshot pinned
/// around every call that plans and starts a query:
///
/// * simple protocol: one pin per `Query` message, shared by all statements
///   in it;
/// * extended protocol: one pin per portal, taken at its first `Execute`
///   (later `Execute`s of a suspended portal continue the same result);
/// * inside `BEGIN ... COMMIT/ROLLBACK` on a connection: the pin taken by
///   the message or portal that began the block is reused until it ends, so
///   a transaction reads one epoch throughout.
///
/// Scans capture the pinned snapshot's batches while the physical plan is
/// built, which datafusion-postgres does inside `do_query`; rows streamed to
/// the client afterwards therefore still come from the pinned epoch.
pub(crate) struct PinnedSessionService {
    inner: Arc<DfSessionService>,
    store: SnapshotStore,
}

/// Per-connection pin of an open transaction block, kept in pgwire's
/// session extensions.
#[derive(Default)]
struct TransactionPin(Mutex<Option<Arc<Snapshot>>>);

impl TransactionPin {
    fn get(&self) -> Option<Arc<Snapshot>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn set(&self, snapshot: Option<Arc<Snapshot>>) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = snapshot;
    }

    /// Follows the transaction boundaries in `responses` (in order): a
    /// `BEGIN` keeps `snapshot` for the rest of the block, an end drops it.
    fn track<'a>(
        &self,
        snapshot: &Arc<Snapshot>,
        responses: impl IntoIterator<Item = &'a Response>,
    ) {
        for response in responses {
            match response {
                Response::TransactionStart(_) => self.set(Some(snapshot.clone())),
                Response::TransactionEnd(_) => self.set(None),
                _ => {}
            }
        }
    }
}

impl PinnedSessionService {
    pub(crate) fn new(inner: DfSessionService, store: SnapshotStore) -> Self {
        PinnedSessionService {
            inner: Arc::new(inner),
            store,
        }
    }

    /// The snapshot the next statement of `client` must read, and the
    /// connection's transaction pin to update afterwards.
    fn pin_for<C: ClientInfo>(&self, client: &C) -> (Arc<Snapshot>, Arc<TransactionPin>) {
        let transaction = client
            .session_extensions()
            .get_or_insert_with(TransactionPin::default);
        let in_block = !matches!(client.transaction_status(), TransactionStatus::Idle);
        let snapshot = in_block
            .then(|| transaction.get())
            .flatten()
            .unwrap_or_else(|| self.store.latest());
        (snapshot, transaction)
    }
}

#[async_trait]
impl SimpleQueryHandler for PinnedSessionService {
    async fn do_query<C>(&self, client: &mut C, query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let (snapshot, transaction) = self.pin_for(client);
        let responses = with_snapshot(
            snapshot.clone(),
            SimpleQueryHandler::do_query(self.inner.as_ref(), client, query),
        )
        .await?;
        transaction.track(&snapshot, &responses);
        Ok(responses)
    }
}

#[async_trait]
impl ExtendedQueryHandler for PinnedSessionService {
    type Statement = <DfSessionService as ExtendedQueryHandler>::Statement;
    type QueryParser = Parser;

    fn query_parser(&self) -> Arc<Self::QueryParser> {
        // Parsing and describing only plan; plans name tables but hold no
        // data, so they need no pin.
        ExtendedQueryHandler::query_parser(self.inner.as_ref())
    }

    async fn do_query<C>(
        &self,
        client: &mut C,
        portal: &Portal<Self::Statement>,
        max_rows: usize,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let (snapshot, transaction) = self.pin_for(client);
        let response = with_snapshot(
            snapshot.clone(),
            ExtendedQueryHandler::do_query(self.inner.as_ref(), client, portal, max_rows),
        )
        .await?;
        transaction.track(&snapshot, [&response]);
        Ok(response)
    }
}
