//! Listing every user of a store, streaming (for `dripgate handoff`): SQL stores page by page
//! with keyset pagination on the id, export files row by row on a blocking thread that hands
//! over pages through a bounded channel. Only the current page is in memory.

use tokio::sync::mpsc;

use super::export;
use super::presets::PAGE_ROWS;
use super::record::RawRow;
use super::sql::PageKey;
use super::{Backend, LegacyError, LegacyStore, LegacyUser, Reason};

/// One user as an enumeration lists it.
#[derive(Debug)]
pub struct Listed {
    /// The user, or why the row cannot be migrated (duplicate keys are not seen here: they
    /// span pages; a lookup by key tells).
    pub user: Result<LegacyUser, Reason>,
    /// When the user was created, as the store holds it (text), where it has such a column.
    pub created: Option<String>,
}

/// Where an enumeration reads from.
pub(super) enum Source {
    Sql { after: Option<PageKey>, done: bool },
    Export(mpsc::Receiver<Result<Vec<RawRow>, LegacyError>>),
}

/// A running enumeration; [`Enumeration::next_page`] until `None`.
pub struct Enumeration {
    pub(super) store: LegacyStore,
    pub(super) source: Source,
}

impl std::fmt::Debug for Enumeration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Enumeration").finish_non_exhaustive()
    }
}

impl Enumeration {
    /// The next page of users (at most a few hundred), or `None` at the end.
    pub async fn next_page(&mut self) -> Result<Option<Vec<Listed>>, LegacyError> {
        let rules = &self.store.inner.rules;
        let rows: Vec<(RawRow, Option<String>)> = match &mut self.source {
            Source::Sql { after, done } => {
                if *done {
                    return Ok(None);
                }
                let Backend::Sql(s) = &self.store.inner.backend else {
                    return Ok(None);
                };
                let page = s.page(after.as_ref()).await?;
                *done = page.rows.len() < PAGE_ROWS;
                *after = page.last;
                page.rows
            }
            Source::Export(rx) => match rx.recv().await {
                Some(rows) => rows?.into_iter().map(|r| (r, None)).collect(),
                None => return Ok(None),
            },
        };
        if rows.is_empty() {
            return Ok(None);
        }
        Ok(Some(
            rows.into_iter()
                .map(|(raw, created)| Listed {
                    user: rules.classify(&raw),
                    created,
                })
                .collect(),
        ))
    }
}

/// Reads the export file on a blocking thread, a page at a time; stops when the receiver is
/// dropped.
pub(super) fn read_export(store: LegacyStore) -> mpsc::Receiver<Result<Vec<RawRow>, LegacyError>> {
    let (tx, rx) = mpsc::channel(2);
    tokio::task::spawn_blocking(move || {
        let Backend::Export(e) = &store.inner.backend else {
            return;
        };
        let mut page = Vec::with_capacity(PAGE_ROWS);
        let mut each = |fields| {
            page.push(export::to_raw_row(fields));
            if page.len() == PAGE_ROWS {
                let full = std::mem::replace(&mut page, Vec::with_capacity(PAGE_ROWS));
                tx.blocking_send(Ok(full))
                    .map_err(|_| LegacyError::Config("enumeration dropped".into()))?;
            }
            Ok(())
        };
        let read = export::read_rows(&e.config.path, e.kind, &e.columns, &mut each);
        let last = match read {
            Ok(_) if page.is_empty() => return,
            Ok(_) => Ok(page),
            Err(err) => Err(err),
        };
        let _ = tx.blocking_send(last);
    });
    rx
}
