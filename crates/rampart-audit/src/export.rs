//! Search and export: records as JSON objects, read page by page (never the whole ledger in
//! memory), with payloads decrypted only when the caller holds the master key.

use std::collections::HashMap;
use std::io::Write;

use serde_json::{json, Value};

use crate::backend::{Backend, Cursor, Filter};
use crate::crypto::{self, KeyProvider, SecretKey};
use crate::record::{hex, Stored};
use crate::AuditError;

const PAGE: usize = 500;

/// Turns stored records into JSON, decrypting payloads when it can.
pub struct Renderer<'a> {
    keys: Option<&'a dyn KeyProvider>,
    deks: HashMap<i64, Option<SecretKey>>,
}

impl<'a> Renderer<'a> {
    /// With `keys`, payloads are decrypted; without, they are shown as `sealed`.
    pub fn new(keys: Option<&'a dyn KeyProvider>) -> Renderer<'a> {
        Renderer {
            keys,
            deks: HashMap::new(),
        }
    }

    /// One record as a JSON object.
    pub fn render(&mut self, backend: &mut dyn Backend, r: &Stored) -> Result<Value, AuditError> {
        let meta: Value = serde_json::from_slice(&r.meta).unwrap_or(Value::Null);
        let findings: Vec<&str> = r.findings.split('\n').filter(|s| !s.is_empty()).collect();
        let (state, payload) = self.payload(backend, r)?;
        Ok(json!({
            "chain": r.chain,
            "seq": r.seq,
            "ts_ms": r.ts_ms,
            "kind": r.kind,
            "subject": r.subject,
            "principal": r.principal,
            "model": r.model,
            "decision": r.decision,
            "findings": findings,
            "meta": meta,
            "dek_id": r.dek_id,
            "payload_state": state,
            "payload": payload,
            "hash": hex(&r.hash),
        }))
    }

    fn payload(&mut self, backend: &mut dyn Backend, r: &Stored) -> Result<(&'static str, Value), AuditError> {
        let Some(dek_id) = r.dek_id else {
            return Ok(("none", Value::Null));
        };
        let Some(sealed) = &r.payload else {
            return Ok(("expired", Value::Null));
        };
        let Some(keys) = self.keys else {
            return Ok(("sealed", Value::Null));
        };
        if let std::collections::hash_map::Entry::Vacant(slot) = self.deks.entry(dek_id) {
            let key = match backend.dek(dek_id)? {
                Some(row) => match (row.kek_id, row.wrapped) {
                    (Some(kek), Some(w)) => Some(keys.unwrap(&kek, &w, &crypto::dek_aad(&row.subject, row.id))?),
                    _ => None,
                },
                None => None,
            };
            slot.insert(key);
        }
        let Some(Some(key)) = self.deks.get(&dek_id) else {
            return Ok(("erased", Value::Null));
        };
        match crypto::open(key, sealed, &crypto::payload_aad(&r.chain, r.seq)) {
            Ok(plain) => Ok((
                "decrypted",
                serde_json::from_slice(&plain)
                    .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&plain).into())),
            )),
            Err(_) => Ok(("undecryptable", Value::Null)),
        }
    }
}

/// Calls `each` for every matching record, in (chain, seq) order, a page at a time; stops
/// after `limit` records when given.
pub fn for_each(
    backend: &mut dyn Backend,
    filter: &Filter,
    limit: Option<u64>,
    mut each: impl FnMut(&mut dyn Backend, &Stored) -> Result<(), AuditError>,
) -> Result<u64, AuditError> {
    let mut cursor: Cursor = None;
    let mut n = 0u64;
    loop {
        let want = limit.map_or(PAGE, |l| (l - n).min(PAGE as u64) as usize);
        if want == 0 {
            return Ok(n);
        }
        let page = backend.search(filter, &cursor, want)?;
        for r in &page {
            each(&mut *backend, r)?;
            n += 1;
        }
        match page.last() {
            Some(last) if page.len() == want => cursor = Some((last.chain.clone(), last.seq)),
            _ => return Ok(n),
        }
    }
}

/// Writes matching records as JSON Lines; returns how many.
pub fn export_jsonl(
    backend: &mut dyn Backend,
    filter: &Filter,
    keys: Option<&dyn KeyProvider>,
    limit: Option<u64>,
    out: &mut dyn Write,
) -> Result<u64, AuditError> {
    let mut renderer = Renderer::new(keys);
    for_each(backend, filter, limit, |b, r| {
        let v = renderer.render(b, r)?;
        serde_json::to_writer(&mut *out, &v).map_err(|e| AuditError::Export(e.to_string()))?;
        out.write_all(b"\n").map_err(|e| AuditError::Export(e.to_string()))
    })
}
