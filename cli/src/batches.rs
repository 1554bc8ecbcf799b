//! `keys import`: good rows go to `POST /keys/import` in batches of at most
//! [`IMPORT_BATCH`](crate::client::IMPORT_BATCH), each with an `Idempotency-Key` derived from
//! its content (so running the same import again within a day replays the answers instead of
//! creating anything twice), under a progress bar on a terminal, with a progress line per batch
//! on standard error otherwise.

use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::client::{Client, ClientError, IMPORT_BATCH, ImportKeys};
use crate::import::{BadRow, Parsed, Row};

/// What an import did.
#[derive(Debug, Default)]
pub struct Outcome {
    /// `(line, key id)` of each created key.
    pub created: Vec<(u64, String)>,
    /// `(line, code, detail)` of each refused row, by the file or by the API.
    pub refused: Vec<(u64, String, String)>,
}

impl Outcome {
    /// The summary for people: counts, then each refused line.
    #[must_use]
    pub fn summary(&self) -> String {
        let mut s = format!(
            "Imported {} keys; refused {}.\n",
            self.created.len(),
            self.refused.len()
        );
        for (line, code, detail) in &self.refused {
            s.push_str(&format!("line {line}: {detail} ({code})\n"));
        }
        s
    }

    /// The summary for scripts.
    #[must_use]
    pub fn to_json(&self) -> Value {
        json!({
            "created": self.created.len(),
            "refused": self.refused.len(),
            "results": self.created.iter().map(|(line, id)| json!({"line": line, "id": id}))
                .chain(self.refused.iter().map(|(line, code, detail)| {
                    json!({"line": line, "error": {"code": code, "detail": detail}})
                }))
                .collect::<Vec<_>>(),
        })
    }
}

/// Sends `parsed`'s good rows; its bad rows are reported as refused with code `invalid_row`.
///
/// # Errors
/// The first batch the API refuses as a whole (or that cannot be sent); the batches before it
/// stay imported.
pub async fn import(
    client: &Client,
    parsed: Parsed,
    progress: bool,
) -> Result<Outcome, ClientError> {
    let mut outcome = Outcome::default();
    for BadRow { line, detail } in parsed.bad {
        outcome
            .refused
            .push((line, "invalid_row".to_owned(), detail));
    }
    let bar = if progress {
        let bar = ProgressBar::new(parsed.rows.len() as u64);
        if let Ok(style) = ProgressStyle::with_template("{bar:40} {pos}/{len} keys {msg}") {
            bar.set_style(style);
        }
        bar
    } else {
        ProgressBar::hidden()
    };
    let mut sent = 0;
    for batch in parsed.rows.chunks(IMPORT_BATCH) {
        let body = ImportKeys {
            keys: batch.iter().map(|r| r.key.clone()).collect(),
        };
        let answer = client
            .import_keys(&body, &idempotency_key(&body))
            .await
            .inspect_err(|_| bar.abandon())?;
        record(&mut outcome, batch, &answer.value.results);
        bar.inc(batch.len() as u64);
        sent += batch.len();
        if !progress {
            eprintln!("sent {sent} of {} keys", parsed.rows.len());
        }
    }
    bar.finish_and_clear();
    outcome.refused.sort_by_key(|(line, ..)| *line);
    Ok(outcome)
}

fn record(outcome: &mut Outcome, batch: &[Row], results: &[crate::client::ImportResult]) {
    for r in results {
        let Some(row) = batch.get(r.index) else {
            continue;
        };
        match (&r.id, &r.error) {
            (_, Some(p)) => outcome
                .refused
                .push((row.line, p.code.clone(), p.detail.clone())),
            (Some(id), None) => outcome.created.push((row.line, id.clone())),
            (None, None) => outcome.refused.push((
                row.line,
                "unknown".to_owned(),
                "the API gave neither an id nor an error".to_owned(),
            )),
        }
    }
}

/// `import-` + the SHA-256 of the batch's body: the same batch always has the same key.
fn idempotency_key(body: &ImportKeys) -> String {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    format!("import-{}", hex::encode(Sha256::digest(&bytes)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::{ImportKey, ImportResult};
    use keyward_common::Problem;

    fn row(line: u64, name: &str) -> Row {
        Row {
            line,
            key: ImportKey {
                hash: Some("ab".repeat(32)),
                name: name.to_owned(),
                ..ImportKey::default()
            },
        }
    }

    #[test]
    fn results_map_back_to_file_lines() {
        let batch = [row(2, "a"), row(5, "b")];
        let mut o = Outcome::default();
        record(
            &mut o,
            &batch,
            &[
                ImportResult {
                    index: 0,
                    id: Some("key_1".into()),
                    error: None,
                },
                ImportResult {
                    index: 1,
                    id: None,
                    error: Some(Problem::new(409, "duplicate_key", "That hash exists.")),
                },
            ],
        );
        assert_eq!(o.created, [(2, "key_1".to_owned())]);
        assert_eq!(
            o.summary(),
            "Imported 1 keys; refused 1.\nline 5: That hash exists. (duplicate_key)\n"
        );
    }

    #[test]
    fn a_batch_has_a_stable_idempotency_key_of_at_most_255_chars() {
        let a = ImportKeys {
            keys: vec![row(2, "a").key],
        };
        let b = ImportKeys {
            keys: vec![row(2, "b").key],
        };
        assert_eq!(idempotency_key(&a), idempotency_key(&a.clone()));
        assert_ne!(idempotency_key(&a), idempotency_key(&b));
        assert!(idempotency_key(&a).len() <= 255);
    }
}
