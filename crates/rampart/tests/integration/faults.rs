//! A local OpenAI-compatible upstream that misbehaves on purpose. The behaviour is chosen by
//! the first path segment, so one server plays many upstreams:
//! `http://ADDR/<mode>/v1/chat/completions`.

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use futures_util::StreamExt;
use serde_json::{json, Value};

#[derive(Default)]
pub struct Counters {
    pub hits: AtomicUsize,
    /// Streams whose body was dropped before the end (the reader went away).
    pub dropped_streams: AtomicUsize,
    /// Streams that ran to the end.
    pub finished_streams: AtomicUsize,
    /// `hang` requests abandoned by the caller (their handler was dropped).
    pub abandoned_hangs: AtomicUsize,
}

struct HangGuard(Arc<Counters>);

impl Drop for HangGuard {
    fn drop(&mut self) {
        self.0.abandoned_hangs.fetch_add(1, Ordering::SeqCst);
    }
}

pub struct Faults {
    pub addr: std::net::SocketAddr,
    pub counters: Arc<Counters>,
}

impl Faults {
    pub fn base(&self, mode: &str) -> String {
        format!("http://{}/{mode}/v1", self.addr)
    }
}

pub async fn start() -> Faults {
    let counters = Arc::new(Counters::default());
    let app = Router::new()
        .route("/{mode}/v1/{*rest}", post(handle))
        .with_state(counters.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    Faults { addr, counters }
}

pub fn chunk(text: &str) -> String {
    json!({"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "f",
           "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": null}]})
    .to_string()
}

fn ok_body(model: &str) -> Value {
    json!({"id": "x", "object": "chat.completion", "created": 1, "model": model,
           "choices": [{"index": 0, "message": {"role": "assistant", "content": "fine"}, "finish_reason": "stop"}],
           "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}})
}

struct DropGuard {
    counters: Arc<Counters>,
    done: bool,
}

impl DropGuard {
    fn finish(&mut self) {
        self.done = true;
    }
}

impl Drop for DropGuard {
    fn drop(&mut self) {
        if self.done {
            self.counters.finished_streams.fetch_add(1, Ordering::SeqCst);
        } else {
            self.counters.dropped_streams.fetch_add(1, Ordering::SeqCst);
        }
    }
}

fn sse_response(body: Body) -> Response {
    Response::builder()
        .header("content-type", "text/event-stream")
        .body(body)
        .unwrap()
}

fn events(list: Vec<String>) -> Body {
    Body::from_stream(futures_util::stream::iter(
        list.into_iter().map(|e| Ok::<_, Infallible>(Bytes::from(e))),
    ))
}

async fn handle(State(c): State<Arc<Counters>>, Path((mode, _rest)): Path<(String, String)>, body: Bytes) -> Response {
    c.hits.fetch_add(1, Ordering::SeqCst);
    let req: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let model = req["model"].as_str().unwrap_or("none").to_string();
    match mode.as_str() {
        "ok" => axum::Json(ok_body(&model)).into_response(),
        "echo" => axum::Json(json!({"object": "chat.completion", "choices": [], "received": req})).into_response(),
        "hang" => {
            let _guard = HangGuard(c.clone());
            tokio::time::sleep(Duration::from_secs(3600)).await;
            StatusCode::OK.into_response()
        }
        "garbage" => (StatusCode::OK, [("content-type", "application/json")], "<html>not json").into_response(),
        "noshape" => axum::Json(json!({"hello": "world"})).into_response(),
        "refuse400" => (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"error": {"message": "max_tokens is too large", "type": "invalid_request_error"}})),
        )
            .into_response(),
        "auth401" => (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({"error": {"message": "Incorrect API key provided: sk-secret"}})),
        )
            .into_response(),
        "err500" => (StatusCode::INTERNAL_SERVER_ERROR, "boom").into_response(),
        "unavailable503" => (StatusCode::SERVICE_UNAVAILABLE, "down").into_response(),
        "slowbody" => {
            let s = futures_util::stream::once(async { Ok::<_, Infallible>(Bytes::from_static(b"{\"choices\":")) })
                .chain(futures_util::stream::pending());
            Response::builder()
                .header("content-type", "application/json")
                .body(Body::from_stream(s))
                .unwrap()
        }
        "cut_stream" => sse_response(events(vec![
            format!("data: {}\n\n", chunk("one")),
            format!("data: {}\n\n", chunk("two")),
        ])),
        "bad_event" => sse_response(events(vec![
            format!("data: {}\n\n", chunk("one")),
            "data: {not json\n\n".to_string(),
            format!("data: {}\n\n", chunk("never")),
        ])),
        "multiline" => {
            // Valid SSE: one event whose JSON spans several data lines, CRLF line endings, a comment.
            let pretty =
                serde_json::to_string_pretty(&serde_json::from_str::<Value>(&chunk("multi")).unwrap()).unwrap();
            let data: String = pretty.lines().map(|l| format!("data: {l}\r\n")).collect();
            sse_response(events(vec![
                ": keep-alive\r\n\r\n".into(),
                format!("{data}\r\n"),
                "data: [DONE]\r\n\r\n".into(),
            ]))
        }
        "stall_stream" => {
            let s = futures_util::stream::once(async {
                Ok::<_, Infallible>(Bytes::from(format!("data: {}\n\n", chunk("one"))))
            })
            .chain(futures_util::stream::pending());
            sse_response(Body::from_stream(s))
        }
        "slow_stream" => {
            // One event every 100 ms for 10 s; records whether the reader went away.
            let guard = DropGuard {
                counters: c.clone(),
                done: false,
            };
            let s = futures_util::stream::unfold((0u32, guard), |(i, mut guard)| async move {
                if i == 100 {
                    guard.finish();
                    return None;
                }
                if i > 0 {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Some((
                    Ok::<_, Infallible>(Bytes::from(format!(
                        "data: {}\n\n",
                        chunk(&format!("t{i} and then some more words, "))
                    ))),
                    (i + 1, guard),
                ))
            });
            sse_response(Body::from_stream(s))
        }
        _ => (StatusCode::NOT_FOUND, "unknown mode").into_response(),
    }
}
