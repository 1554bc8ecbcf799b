//! Transactions carry a `ClientRequestToken` that the SDK's retries of one attempt reuse.
//!
//! moto (5.2) ignores `ClientRequestToken`, so it cannot show that DynamoDB applies a repeated
//! token once. What Keyward controls is tested here instead, against a fake DynamoDB endpoint: the
//! token is on the request, an SDK retry after a lost answer (HTTP 500) resends the same token
//! (so DynamoDB, which keeps a committed token for 10 minutes, would not commit the create
//! twice), and the token is the one derived from the mutation's audit event.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
use keyward_common::{KeyId, KeyRecord, KeyStatus, SecretKey, Timestamp};
use keyward_functions::store::dynamo::{DynamoStore, transaction_token};
use keyward_functions::store::{AuditEvent, KeyStore, StoredKey};

/// A DynamoDB endpoint that answers its first `failures` requests with HTTP 500 and the rest
/// with `{}`, recording every request body.
struct FakeDynamo {
    url: String,
    bodies: Arc<Mutex<Vec<serde_json::Value>>>,
}

impl FakeDynamo {
    fn start(failures: usize) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&bodies);
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { return };
                let seen = Arc::clone(&seen);
                std::thread::spawn(move || serve(conn, &seen, failures));
            }
        });
        Self { url, bodies }
    }

    fn bodies(&self) -> Vec<serde_json::Value> {
        self.bodies.lock().unwrap().clone()
    }
}

fn serve(conn: TcpStream, seen: &Mutex<Vec<serde_json::Value>>, failures: usize) {
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut out = conn;
    loop {
        let mut length = 0usize;
        let mut line = String::new();
        loop {
            line.clear();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            if line == "\r\n" {
                break;
            }
            if let Some((name, value)) = line.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().unwrap();
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        let count = {
            let mut seen = seen.lock().unwrap();
            seen.push(serde_json::from_slice(&body).unwrap());
            seen.len()
        };
        let (status, answer) = if count <= failures {
            (
                "500 Internal Server Error",
                r#"{"__type":"com.amazonaws.dynamodb.v20120810#InternalServerError","message":"lost"}"#,
            )
        } else {
            ("200 OK", "{}")
        };
        let response = format!(
            "HTTP/1.1 {status}\r\ncontent-type: application/x-amz-json-1.0\r\ncontent-length: {}\r\n\r\n{answer}",
            answer.len()
        );
        if out.write_all(response.as_bytes()).is_err() {
            return;
        }
    }
}

fn store(url: &str) -> DynamoStore {
    let conf = aws_sdk_dynamodb::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(url)
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "test"))
        .build();
    DynamoStore::new(Client::from_conf(conf), "keyward-test")
}

fn new_key() -> StoredKey {
    let s = SecretKey::generate("kw", |b: &mut [u8]| getrandom::fill(b).unwrap()).unwrap();
    StoredKey {
        record: KeyRecord {
            id: KeyId::new(1_795_000_000_000, [7; 10]),
            workspace: "acme".into(),
            name: "key".into(),
            key_prefix: s.presented().display_prefix(),
            scopes: vec!["read".into()],
            roles: vec![],
            permissions: vec![],
            owner_id: None,
            meta: None,
            status: KeyStatus::Active,
            created_at: Timestamp(1_795_000_000),
            updated_at: Timestamp(1_795_000_000),
            expires_at: None,
            last_used_at: None,
            allowed_ips: vec![],
            rate_limit: None,
            rate_limits: Vec::new(),
            credits: None,
            version: 1,
            imported: false,
        },
        hash: s.hash(),
        previous: None,
        credit: Default::default(),
    }
}

fn audit(request_id: &str, id: &str) -> AuditEvent {
    AuditEvent {
        id: id.into(),
        workspace: "acme".into(),
        at: Timestamp(1_795_000_000),
        actor: "jwt:test".into(),
        action: "key.create".into(),
        key_id: Some("key".into()),
        role: None,
        webhook_id: None,
        owner_id: None,
        changed: vec![],
        request_id: request_id.into(),
        source_ip: None,
    }
}

#[tokio::test]
async fn an_sdk_retry_of_a_create_resends_the_same_client_request_token() {
    let fake = FakeDynamo::start(1);
    let event = audit("req-1", "1795000000000#00aa");
    store(&fake.url)
        .create(&new_key(), &event, 10)
        .await
        .expect("the retry succeeds");
    let bodies = fake.bodies();
    assert_eq!(bodies.len(), 2, "one lost answer, one retry: {bodies:?}");
    let tokens: Vec<_> = bodies
        .iter()
        .map(|b| {
            b["ClientRequestToken"]
                .as_str()
                .expect("a token")
                .to_owned()
        })
        .collect();
    assert_eq!(tokens[0], tokens[1], "the retry must reuse the token");
    assert_eq!(tokens[0], transaction_token(&event, 0));
    // The transaction is the create's: key, hash, audit event, counter.
    assert_eq!(bodies[0]["TransactItems"].as_array().unwrap().len(), 4);
}

#[test]
fn tokens_differ_per_mutation_and_per_attempt_and_fit_dynamodb() {
    let a = audit("req-1", "1795000000000#00aa");
    let same_request_other_event = audit("req-1", "1795000000000#00ab");
    let other_request = audit("req-2", "1795000000000#00aa");
    let tokens: HashMap<String, &str> = [
        (transaction_token(&a, 0), "a/0"),
        (transaction_token(&a, 1), "a/1"),
        (transaction_token(&same_request_other_event, 0), "event"),
        (transaction_token(&other_request, 0), "request"),
    ]
    .into_iter()
    .collect();
    assert_eq!(tokens.len(), 4, "{tokens:?}");
    assert_eq!(transaction_token(&a, 0), transaction_token(&a.clone(), 0));
    for token in tokens.keys() {
        assert!((1..=36).contains(&token.len()), "{token}");
        assert!(token.chars().all(|c| c.is_ascii_hexdigit()), "{token}");
    }
}
