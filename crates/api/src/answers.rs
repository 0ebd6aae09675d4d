//! Answers to repeated reads, kept while the data they were built from is unchanged.
//!
//! An answer is filed under its request (path and query), the base URL its links use and
//! the caller's [`Viewer::sight`](crate::authz::Viewer::sight), together with the data
//! generation read before any of its data ([`hearth_store::data_generation`]). It is
//! served only while the generation is still that number. Any committed change to apps,
//! spaces, organizations or metadata moves the number, whichever process on the same
//! database made it, and so retires every kept answer at once.
//!
//! Invariants:
//! - Only an endpoint whose answer depends on nothing but those tables, the caller's
//!   sight, the base URL and the request's path and query may keep answers.
//! - The generation is read before the data: an answer is never filed under a number
//!   newer than its data, so a later change is never hidden.
//! - `Cache-Control: no-cache` (or `no-store`, `max-age=0`) or `Pragma: no-cache` on a
//!   request builds its answer afresh (and keeps that one).
//! - Bounded: at most [`MAX_ANSWERS`] answers and [`MAX_BYTES`] bytes (bodies and keys),
//!   first filed out first.
//! - A generation lower than the shelf's (a database restored or made anew) empties it.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use hearth_store::{self as store, Conn};

use crate::context::Ctx;
use crate::error::ApiResult;

/// How many answers are kept at most.
const MAX_ANSWERS: usize = 256;
/// How many bytes (bodies and keys) all kept answers hold at most.
const MAX_BYTES: usize = 32 << 20;
/// The largest single answer that is kept.
const MAX_ANSWER_BYTES: usize = 4 << 20;

/// The kept answers of one API; cheap to clone (clones share them).
#[derive(Clone, Default)]
pub struct Answers(Arc<Mutex<Shelf>>);

#[derive(Default)]
struct Shelf {
    /// The generation every kept answer was built at.
    generation: i64,
    kept: HashMap<String, Kept>,
    /// Keys, oldest first.
    order: VecDeque<String>,
    bytes: usize,
}

struct Kept {
    headers: HeaderMap,
    body: Bytes,
}

/// What a lookup found: the answer, or what to file a fresh answer under.
pub enum Found {
    Answer(Response),
    Missing(Pending),
}

/// A request whose answer is being built; [`Pending::keep`] files it.
pub struct Pending {
    answers: Answers,
    key: String,
    generation: i64,
}

impl Answers {
    /// The kept answer to `path?query` for `ctx`, if the data is unchanged since it was
    /// built. Reads the data generation on `conn`: call this before reading any data.
    pub async fn find(&self, conn: &mut Conn, ctx: &Ctx, path: &str, query: Option<&str>) -> ApiResult<Found> {
        let generation = store::data_generation(conn).await?;
        let key = [path, "?", query.unwrap_or(""), "\n", &ctx.base, "\n", &ctx.viewer.sight()].concat();
        if !ctx.no_cache {
            let mut shelf = self.0.lock().unwrap_or_else(|p| p.into_inner());
            if generation < shelf.generation {
                // The number went back: a database restored or made anew. Nothing kept can
                // be trusted (at worst a slow reader empties a newer shelf: a refill).
                *shelf = Shelf { generation, ..Shelf::default() };
            }
            if shelf.generation == generation
                && let Some(kept) = shelf.kept.get(&key)
            {
                let mut response = Response::new(Body::from(kept.body.clone()));
                *response.headers_mut() = kept.headers.clone();
                return Ok(Found::Answer(response));
            }
        }
        Ok(Found::Missing(Pending { answers: self.clone(), key, generation }))
    }

    fn put(&self, key: String, generation: i64, kept: Kept) {
        let mut shelf = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if generation < shelf.generation || kept.body.len() > MAX_ANSWER_BYTES {
            return;
        }
        if generation > shelf.generation {
            *shelf = Shelf { generation, ..Shelf::default() };
        }
        // A key counts too: it holds the caller's sight, every space of a large org.
        shelf.bytes += key.len() + kept.body.len();
        match shelf.kept.insert(key.clone(), kept) {
            Some(old) => shelf.bytes -= key.len() + old.body.len(),
            None => shelf.order.push_back(key),
        }
        while shelf.order.len() > MAX_ANSWERS || shelf.bytes > MAX_BYTES {
            let Some(oldest) = shelf.order.pop_front() else { break };
            if let Some(gone) = shelf.kept.remove(&oldest) {
                shelf.bytes -= oldest.len() + gone.body.len();
            }
        }
    }
}

impl Pending {
    /// Files `response` (a `200 OK` only) and answers it.
    pub async fn keep(self, response: Response) -> Response {
        if response.status() != StatusCode::OK {
            return response;
        }
        let (parts, body) = response.into_parts();
        let body = match axum::body::to_bytes(body, usize::MAX).await {
            Ok(body) => body,
            Err(e) => {
                tracing::error!(error = %e, "an answer's body could not be read");
                return (StatusCode::INTERNAL_SERVER_ERROR, "cannot read the answer\n").into_response();
            }
        };
        let kept = Kept { headers: parts.headers.clone(), body: body.clone() };
        self.answers.put(self.key, self.generation, kept);
        Response::from_parts(parts, Body::from(body))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kept(n: usize) -> Kept {
        Kept { headers: HeaderMap::new(), body: Bytes::from(vec![b'x'; n]) }
    }

    impl Answers {
        fn len(&self) -> usize {
            self.0.lock().unwrap().kept.len()
        }
    }

    fn has(answers: &Answers, key: &str, generation: i64) -> bool {
        let shelf = answers.0.lock().unwrap();
        shelf.generation == generation && shelf.kept.contains_key(key)
    }

    #[test]
    fn a_newer_generation_retires_every_answer_and_an_older_one_is_not_filed() {
        let answers = Answers::default();
        answers.put("a".into(), 5, kept(10));
        answers.put("b".into(), 5, kept(10));
        assert!(has(&answers, "a", 5) && has(&answers, "b", 5));
        answers.put("c".into(), 6, kept(10));
        assert_eq!(answers.len(), 1, "answers built at 5 are gone once one at 6 is filed");
        answers.put("a".into(), 5, kept(10));
        assert!(!has(&answers, "a", 5) && !has(&answers, "a", 6), "an answer built on older data is not filed");
        assert_eq!(answers.0.lock().unwrap().bytes, 1 + 10);
    }

    #[test]
    fn the_shelf_stays_within_its_bounds_oldest_out_first() {
        let answers = Answers::default();
        for i in 0..MAX_ANSWERS + 10 {
            answers.put(format!("k{i}"), 1, kept(1));
        }
        assert_eq!(answers.len(), MAX_ANSWERS);
        assert!(!has(&answers, "k0", 1) && has(&answers, &format!("k{}", MAX_ANSWERS + 9), 1));
        let big = MAX_ANSWER_BYTES;
        for i in 0..(MAX_BYTES / big) + 2 {
            answers.put(format!("big{i}"), 1, kept(big));
        }
        let shelf = answers.0.lock().unwrap();
        assert!(shelf.bytes <= MAX_BYTES, "{} bytes kept", shelf.bytes);
        assert_eq!(shelf.bytes, shelf.kept.iter().map(|(k, v)| k.len() + v.body.len()).sum::<usize>());
        drop(shelf);
        answers.put("huge".into(), 1, kept(MAX_ANSWER_BYTES + 1));
        assert!(!has(&answers, "huge", 1), "an answer over the single-answer limit is not kept");
    }

    #[test]
    fn filing_the_same_key_twice_counts_its_bytes_once() {
        let answers = Answers::default();
        answers.put("a".into(), 1, kept(10));
        answers.put("a".into(), 1, kept(30));
        let shelf = answers.0.lock().unwrap();
        assert_eq!((shelf.bytes, shelf.order.len()), (1 + 30, 1));
    }
}
