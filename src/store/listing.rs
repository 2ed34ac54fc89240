//! The inventory as the status page lists it: every current certificate in one pass, each row
//! borrowed from the cursor with its list columns left as the stored JSON text, so a pass over
//! 100,000 certificates decodes and allocates nothing per row. The sources that see each
//! certificate come from a second cursor over the sightings in the same (certificate id) order,
//! merged as both advance, as small numbers into a table of source names. (Tested against
//! [`Store::certificates`] in `app::status`, where a store can be filled by a scan.)
//!
//! PostgreSQL streams one result at a time over a connection, so there the sources come with
//! each certificate's row, aggregated by the server.

use super::db::{Db, Row, params};
use super::{Result, Store, StoreError};
use crate::model::UnixTime;

/// One current certificate, borrowed from the cursor.
#[derive(Debug, Clone, Copy)]
pub struct ListingRow<'a> {
    pub id: i64,
    pub fingerprint: &'a str,
    pub subject: &'a str,
    pub common_name: Option<&'a str>,
    /// The stored JSON array (`["DNS:a.example", …]`).
    pub sans_json: &'a str,
    /// Upper-case hex.
    pub serial: &'a str,
    pub issuer: &'a str,
    pub not_before: UnixTime,
    pub not_after: UnixTime,
    pub first_seen: UnixTime,
    /// The stored JSON array of EKU names or OIDs.
    pub ekus_json: &'a str,
    pub is_ca: bool,
    /// `good`, `revoked`, `unknown`, `not-applicable`; `None` until checked.
    pub revocation: Option<&'a str>,
    /// Indexes into [`Listing::sources`] of the sources with a current sighting, in name order.
    pub sources: &'a [u16],
}

/// The names [`ListingRow::sources`] index.
#[derive(Debug, Default)]
pub struct Listing {
    pub sources: Vec<String>,
}

fn text<'a>(r: &'a rusqlite::Row<'_>, i: usize) -> Result<&'a str> {
    match r.get_ref(i)? {
        rusqlite::types::ValueRef::Text(t) => {
            std::str::from_utf8(t).map_err(|e| StoreError::Corrupt { what: "certificates (listing)", detail: e.to_string() })
        }
        other => {
            Err(StoreError::Corrupt { what: "certificates (listing)", detail: format!("column {i} is {:?}, not text", other.data_type()) })
        }
    }
}

fn opt_text<'a>(r: &'a rusqlite::Row<'_>, i: usize) -> Result<Option<&'a str>> {
    match r.get_ref(i)? {
        rusqlite::types::ValueRef::Null => Ok(None),
        _ => text(r, i).map(Some),
    }
}

/// The index of `source` in `names`, added when new.
fn source_index(names: &mut Listing, index: &mut std::collections::HashMap<String, u16>, source: &str) -> Result<u16> {
    if let Some(n) = index.get(source) {
        return Ok(*n);
    }
    let n = u16::try_from(names.sources.len())
        .map_err(|_| StoreError::Corrupt { what: "sources", detail: "more than 65,535 sources".into() })?;
    index.insert(source.to_string(), n);
    names.sources.push(source.to_string());
    Ok(n)
}

const LISTING_COLUMNS: &str = "c.id, c.fingerprint, c.subject, c.common_name, c.sans, c.serial, c.issuer, c.not_before, c.not_after,
    c.first_seen, c.ext_key_usage, c.is_ca, r.status";

impl Store {
    /// Calls `f` for every current certificate, by id.
    pub fn each_listing(&self, f: impl FnMut(&Listing, &ListingRow<'_>)) -> Result<()> {
        match &self.conn {
            Db::Sqlite(conn) => listing_sqlite(conn, f),
            Db::Postgres(_) => self.listing_aggregated(f),
        }
    }

    fn listing_aggregated(&self, mut f: impl FnMut(&Listing, &ListingRow<'_>)) -> Result<()> {
        let mut names = Listing::default();
        let mut index: std::collections::HashMap<String, u16> = std::collections::HashMap::new();
        let mut sources: Vec<u16> = Vec::new();
        let sql = format!(
            "SELECT {LISTING_COLUMNS},
                    (SELECT string_agg(DISTINCT s.source, E'\\n' ORDER BY s.source) FROM sightings s
                     WHERE s.cert_id = c.id AND s.gone_since IS NULL)
             FROM certificates c LEFT JOIN revocation_status r ON r.cert_id = c.id
             WHERE c.gone_since IS NULL ORDER BY c.id"
        );
        self.conn.query_each(&sql, params![], |r| {
            sources.clear();
            if let Some(list) = r.get_ref(13)?.as_opt_str()? {
                for source in list.split('\n') {
                    sources.push(source_index(&mut names, &mut index, source)?);
                }
            }
            let row = listing_row(r, &sources)?;
            f(&names, &row);
            Ok(())
        })
    }
}

fn listing_row<'a>(r: &'a Row<'_>, sources: &'a [u16]) -> Result<ListingRow<'a>> {
    Ok(ListingRow {
        id: r.get(0)?,
        fingerprint: r.get_ref(1)?.as_str()?,
        subject: r.get_ref(2)?.as_str()?,
        common_name: r.get_ref(3)?.as_opt_str()?,
        sans_json: r.get_ref(4)?.as_str()?,
        serial: r.get_ref(5)?.as_str()?,
        issuer: r.get_ref(6)?.as_str()?,
        not_before: r.get(7)?,
        not_after: r.get(8)?,
        first_seen: r.get(9)?,
        ekus_json: r.get_ref(10)?.as_str()?,
        is_ca: r.get(11)?,
        revocation: r.get_ref(12)?.as_opt_str()?,
        sources,
    })
}

fn listing_sqlite(conn: &rusqlite::Connection, mut f: impl FnMut(&Listing, &ListingRow<'_>)) -> Result<()> {
    let mut names = Listing::default();
    let mut index: std::collections::HashMap<String, u16> = std::collections::HashMap::new();
    let mut sight = conn.prepare("SELECT cert_id, source FROM sightings WHERE gone_since IS NULL ORDER BY cert_id, source")?;
    let mut sightings = sight.query([])?;
    let mut advance = |names: &mut Listing| -> Result<Option<(i64, u16)>> {
        let Some(r) = sightings.next()? else { return Ok(None) };
        let id: i64 = r.get(0)?;
        let source = text(r, 1)?;
        Ok(Some((id, source_index(names, &mut index, source)?)))
    };
    let mut pending = advance(&mut names)?;
    let mut stmt = conn.prepare(&format!(
        "SELECT {LISTING_COLUMNS} FROM certificates c LEFT JOIN revocation_status r ON r.cert_id = c.id
             WHERE c.gone_since IS NULL ORDER BY c.id"
    ))?;
    let mut rows = stmt.query([])?;
    let mut sources: Vec<u16> = Vec::new();
    while let Some(r) = rows.next()? {
        let id: i64 = r.get(0)?;
        sources.clear();
        while let Some((sid, n)) = pending {
            if sid > id {
                break;
            }
            if sid == id && sources.last() != Some(&n) {
                sources.push(n);
            }
            pending = advance(&mut names)?;
        }
        let row = ListingRow {
            id,
            fingerprint: text(r, 1)?,
            subject: text(r, 2)?,
            common_name: opt_text(r, 3)?,
            sans_json: text(r, 4)?,
            serial: text(r, 5)?,
            issuer: text(r, 6)?,
            not_before: r.get(7)?,
            not_after: r.get(8)?,
            first_seen: r.get(9)?,
            ekus_json: text(r, 10)?,
            is_ca: r.get(11)?,
            revocation: opt_text(r, 12)?,
            sources: &sources,
        };
        f(&names, &row);
    }
    Ok(())
}
